"""Dataset versions: content addressing, idempotence, read-only files, verify, diff, lookup errors,
and a property that load(create(records)) gives the records back exactly."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuneloop.datasets import DatasetStore
from tuneloop.errors import WorkspaceError
from tuneloop.records import Message, Record

BLOCKS = [{"name": "clean", "params": {"nfc": True}, "kept": 3}]
CERT = {"index_version": "idx-1", "checked": 3, "hits": 0}
DROPS = [{"id": "z", "block": "quality", "reason": "too_short"}]


def rec(rid: str, text: str = "hello", split: str = "train", **kw: Any) -> Record:
    return Record(id=rid, shape="text", text=text, meta={"split": split}, **kw)


RECORDS = [rec("a"), rec("b", "world"), rec("c", "val", split="validation")]


def create(store: DatasetStore, records: list[Record] = RECORDS, **kw: Any) -> str:
    args: dict[str, Any] = {
        "parent": None,
        "inputs": {"train_store": "abc"},
        "blocks": BLOCKS,
        "drop_rows": DROPS,
        "certificate": CERT,
    }
    return store.create(records, **{**args, **kw}).version


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    return DatasetStore(tmp_path / "datasets")


def test_create_is_idempotent_and_writes_manifest(store: DatasetStore) -> None:
    first = store.create(
        RECORDS, parent=None, inputs={}, blocks=BLOCKS, drop_rows=DROPS, certificate=CERT
    )
    again = store.create(
        RECORDS[::-1], parent=None, inputs={}, blocks=BLOCKS, drop_rows=DROPS, certificate=CERT
    )
    assert (first.created, again.created, again.version) == (True, False, first.version)
    assert [p.name for p in store.root.iterdir()] == [first.version]
    manifest = store.show(first.version)
    assert {k: manifest["counts"][k] for k in ("records", "train", "validation")} == {
        "records": 3,
        "train": 2,
        "validation": 1,
    }
    assert manifest["drops_by_reason"] == {"quality:too_short": 1}
    assert (store.root / first.version / "rejects.jsonl").read_text().count("too_short") == 1
    assert set(manifest["files"]) == {"data.parquet", "rejects.jsonl"}


def test_a_concurrent_create_of_the_same_version_succeeds(
    store: DatasetStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = create(store)
    other = (store.root / version).rename(store.root / "other-writer")
    real_rename = Path.rename

    def racing(self: Path, target: Path) -> Path:
        real_rename(other, target)  # the other writer renames first
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", racing)
    assert create(store) == version
    assert [p.name for p in store.root.iterdir()] == [version]


@pytest.mark.parametrize(
    "change",
    [
        {"records": [rec("a", "changed"), *RECORDS[1:]]},
        {"records": RECORDS[:2]},
        {"records": [rec("a", split="validation"), *RECORDS[1:]]},
        {"records": [rec("a", rating=1.0), *RECORDS[1:]]},
        {"blocks": [{"name": "clean", "params": {"nfc": False}}]},
        {"inputs": {"train_store": "def"}},
        {"certificate": {**CERT, "index_version": "idx-2"}},
    ],
)
def test_any_content_or_parameter_change_gives_a_new_id(
    store: DatasetStore, change: dict[str, Any]
) -> None:
    assert create(store, **change) != create(store)


@pytest.mark.parametrize(
    "change", [{"parent": "ds-other"}, {"extra": {"note": "x"}}, {"drop_rows": []}]
)
def test_bookkeeping_does_not_change_the_id(store: DatasetStore, change: dict[str, Any]) -> None:
    assert create(store, **change) == create(store)


def test_files_are_read_only_and_verify_detects_tampering(store: DatasetStore) -> None:
    version = create(store)
    folder = store.root / version
    for name in ("data.parquet", "rejects.jsonl", "manifest.json"):
        assert (folder / name).stat().st_mode & 0o222 == 0, name
    assert store.verify(version) == []
    data = folder / "data.parquet"
    data.chmod(0o644)
    data.write_bytes(data.read_bytes().replace(b"hello", b"HELLO"))
    assert any("data.parquet" in p for p in store.verify(version))
    (folder / "rejects.jsonl").chmod(0o644)
    (folder / "rejects.jsonl").unlink()
    assert "rejects.jsonl: missing" in store.verify(version)


def test_diff_reports_records_and_parameters(store: DatasetStore) -> None:
    old = create(store)
    new_records = [rec("a", "changed"), rec("c", "val", split="validation"), rec("d")]
    new = create(store, records=new_records, blocks=[{"name": "clean", "params": {"nfc": False}}])
    diff = store.diff(old, new)
    assert (diff.added, diff.removed, diff.changed) == (["d"], ["b"], ["a"])
    assert diff.splits[old] == {"train": 2, "validation": 1}
    assert diff.blocks_changed == {"clean": {"old": {"nfc": True}, "new": {"nfc": False}}}
    assert diff.inputs_changed == {}
    assert diff.to_dict()["added"] == ["d"]


def test_unknown_version_lists_versions_and_prefixes_resolve(store: DatasetStore) -> None:
    with pytest.raises(WorkspaceError, match="run `tuneloop curate`"):
        store.load("ds-nothing")
    first, second = create(store), create(store, records=RECORDS[:1])
    with pytest.raises(WorkspaceError) as err:
        store.show("ds-xyz")
    assert str(err.value) == f"no dataset version ds-xyz; versions: {first}, {second}"
    for prefix in (first[:6], first[3:8], first):
        assert store.show(prefix)["version"] == first
    with pytest.raises(WorkspaceError, match="ambiguous"):
        store.show("ds-")


def test_list_is_oldest_first_and_latest(store: DatasetStore) -> None:
    assert store.latest() is None and store.list() == []
    versions = [create(store, records=RECORDS[:n]) for n in (3, 1, 2)]
    summaries = store.list()
    assert [s.version for s in summaries] == versions
    assert [(s.records, s.dropped) for s in summaries] == [(3, 1), (1, 1), (2, 1)]
    assert store.latest() == versions[-1]


def test_load_by_split_and_bad_split(store: DatasetStore) -> None:
    version = create(store)
    assert [r.id for r in store.load(version, "validation")] == ["c"]
    assert [r.id for r in store.load(version, "train")] == ["a", "b"]


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        (rec("x", split="test"), "split"),
        (rec("x", rating=float("inf")), "rating"),
        (Record("x", "text", text="t", meta={"score": float("nan")}), "meta"),
        (Record("x", "text", text="t", meta={"span": (1, 2)}), "meta"),
        (Record("x", "text", text="t", meta={"path": Path("p")}), "meta"),
        (rec("a", "again"), "twice"),
    ],
)
def test_bad_records_are_refused(store: DatasetStore, record: Record, problem: str) -> None:
    with pytest.raises(WorkspaceError, match=problem):
        create(store, records=[*RECORDS, record])
    assert store.versions() == []


text = st.text(max_size=20)
opt = st.none() | text
json_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**31), 2**31)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def records(draw: st.DrawFn, rid: str) -> Record:
    shape = draw(st.sampled_from(["chat", "completion", "text"]))
    meta = draw(st.dictionaries(text.filter(lambda k: k != "split"), json_value, max_size=3))
    split = draw(st.sampled_from([None, "train", "validation"]))
    if split is not None:
        meta["split"] = split
    roles = st.sampled_from(["system", "user", "assistant"])
    return Record(
        id=rid,
        shape=shape,
        messages=tuple(draw(st.lists(st.builds(Message, roles, text), max_size=3)))
        if shape == "chat"
        else (),
        prompt=draw(text) if shape == "completion" else None,
        completion=draw(text) if shape == "completion" else None,
        text=draw(text) if shape == "text" else None,
        user_id=draw(opt),
        source=draw(opt),
        rating=draw(st.none() | st.floats(allow_nan=False, allow_infinity=False)),
        thumbs=draw(st.sampled_from([None, "up", "down"])),
        meta=meta,
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 6).flatmap(lambda n: st.tuples(*(records(f"r{i}") for i in range(n)))))
def test_load_round_trips_any_records(recs: tuple[Record, ...]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = DatasetStore(Path(tmp))
        version = create(store, records=list(recs))
        key = {r.id: (r.meta.get("split", "train"), r.id) for r in recs}
        assert store.load(version) == sorted(recs, key=lambda r: key[r.id])
        assert store.verify(version) == []
