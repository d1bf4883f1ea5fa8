"""The eval store: append-only in the API and in SQLite itself; a hash chain finds tampering."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tuneloop.errors import EvalStoreError
from tuneloop.evalside.store import ZERO_HASH, EvalStore, iso_week_window
from tuneloop.records import Record, record_from_obj


def rec(i: int | str, created_at: str | None = "2026-11-12T10:00:00Z") -> Record:
    obj = {"id": f"e{i}", "prompt": f"question {i} ✓", "completion": f"answer {i}"}
    if created_at is not None:
        obj["created_at"] = created_at
    return record_from_obj(obj)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EvalStore]:
    with EvalStore(tmp_path / "eval.sqlite") as s:
        yield s


def raw(store: EvalStore) -> sqlite3.Connection:
    """A separate connection, as any other client (or an attacker) would open."""
    return sqlite3.connect(store.path, isolation_level=None)


def test_append_and_iterate_round_trip(store: EvalStore) -> None:
    chat = record_from_obj(
        {"id": "c1", "messages": [{"role": "user", "content": "hi"}], "rating": 4, "x": [1]}
    )
    items = [("qa", rec(1), None), ("qa", rec(2), "custom"), ("chat", chat, None)]
    assert store.append(items) == ["e1", "e2", "c1"]
    got = list(store.iter_items())
    assert [(i.seq, i.item_id, i.suite) for i in got] == [
        (1, "e1", "qa"),
        (2, "e2", "qa"),
        (3, "c1", "chat"),
    ]
    assert [i.record for i in got] == [rec(1), rec(2), chat]
    assert [i.window for i in got] == ["2026-W46", "custom", None]
    assert [i.item_id for i in store.iter_items("qa")] == ["e1", "e2"]
    assert store.suites() == {"chat": 1, "qa": 2}
    assert store.count() == 3
    assert [i.item_id for i in store.items_since(1)] == ["e2", "c1"]
    assert list(store.items_since(3)) == []


@pytest.mark.parametrize(
    ("created_at", "window"),
    [
        ("2026-11-12T10:00:00Z", "2026-W46"),
        ("2026-01-01", "2026-W01"),
        ("2027-01-01", "2026-W53"),
        ("2026-11-16T00:30:00+02:00", "2026-W46"),  # Sunday night in UTC
        (None, None),
        ("last tuesday", None),
    ],
)
def test_window_from_created_at(created_at: str | None, window: str | None) -> None:
    assert iso_week_window(created_at) == window


def test_head_changes_with_each_append_and_is_deterministic(store: EvalStore) -> None:
    heads = [store.head()]
    for i in range(3):
        store.append([("qa", rec(i), None)])
        heads.append(store.head())
    assert heads[0] == ZERO_HASH
    assert len(set(heads)) == 4
    with EvalStore(store.path) as reopened:
        assert reopened.head() == heads[-1]
    first_prev = raw(store).execute("SELECT prev_hash FROM items WHERE seq = 1").fetchone()[0]
    assert first_prev == ZERO_HASH


def test_verify_ok_on_fresh_and_filled_store(store: EvalStore) -> None:
    assert store.verify().ok and store.verify().rows == 0
    store.append([("qa", rec(i), None) for i in range(5)])
    assert store.verify() == store.verify(known_head=store.head())
    result = store.verify()
    assert (result.ok, result.rows, result.first_bad_seq, result.problem) == (True, 5, None, None)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE items SET record_json = '{}' WHERE seq = 1",
        "UPDATE items SET suite = 'other'",
        "DELETE FROM items WHERE seq = 1",
        "DELETE FROM items",
    ],
)
def test_raw_sql_update_and_delete_are_refused_by_triggers(store: EvalStore, sql: str) -> None:
    store.append([("qa", rec(1), None), ("qa", rec(2), None)])
    head = store.head()
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw(store).execute(sql)
    assert store.count() == 2 and store.head() == head and store.verify().ok


@pytest.mark.parametrize(
    ("call", "operation"),
    [
        (lambda s: s.update("e1", record=rec(9)), "update"),
        (lambda s: s.delete("e1"), "delete"),
    ],
)
def test_api_update_and_delete_refuse_and_are_logged(
    store: EvalStore, call: Callable[[EvalStore], object], operation: str
) -> None:
    store.append([("qa", rec(1), None)])
    head = store.head()
    with pytest.raises(EvalStoreError, match=r"append-only: items cannot be .*add a new item"):
        call(store)
    [entry] = store.audit()
    assert entry.operation == operation and "e1" in entry.detail and entry.at
    assert store.head() == head and store.count() == 1
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):  # the log is kept too
        raw(store).execute("DELETE FROM refused_writes")


def tamper(store: EvalStore, *statements: str) -> None:
    conn = raw(store)
    conn.execute("DROP TRIGGER items_no_update")
    conn.execute("DROP TRIGGER items_no_delete")
    for sql in statements:
        conn.execute(sql)


SWAP_2_AND_4 = (
    "UPDATE items SET seq = seq + 100 WHERE seq = 2",
    "UPDATE items SET seq = 2 WHERE seq = 4",
    "UPDATE items SET seq = 4 WHERE seq = 102",
)
TAMPERING = {  # name: (statements, first bad seq, words in the problem)
    "edit record": (
        ["UPDATE items SET record_json = replace(record_json, 'a', 'b') WHERE seq = 3"],
        3,
        "modified",
    ),
    "edit window": (["UPDATE items SET window = '2020-W01' WHERE seq = 1"], 1, "modified"),
    "forge hash": (["UPDATE items SET row_hash = 'x' WHERE seq = 2"], 2, "modified"),
    "delete middle": (["DELETE FROM items WHERE seq = 3"], 4, "missing"),
    "delete first": (["DELETE FROM items WHERE seq = 1"], 2, "missing"),
    "reorder": (list(SWAP_2_AND_4), 2, "prev_hash"),
    "triggers only": ([], None, "triggers missing"),
}


@pytest.mark.parametrize(("statements", "bad_seq", "problem"), TAMPERING.values(), ids=TAMPERING)
def test_tampering_is_found_by_verify(
    store: EvalStore, statements: list[str], bad_seq: int | None, problem: str
) -> None:
    store.append([("qa", rec(i), None) for i in range(1, 6)])
    tamper(store, *statements)
    result = store.verify()
    assert not result.ok and result.first_bad_seq == bad_seq
    assert result.problem is not None and problem in result.problem


def test_truncated_tail_is_found_against_a_known_head(store: EvalStore) -> None:
    store.append([("qa", rec(i), None) for i in range(1, 6)])
    known = store.head()
    tamper(store, "DELETE FROM items WHERE seq = 5")
    result = store.verify(known_head=known)
    assert (
        not result.ok and result.first_bad_seq == 5 and "not on the chain" in (result.problem or "")
    )


@pytest.mark.parametrize(
    ("batch", "dup"),
    [
        ([("qa", rec(9), None), ("qa", rec(1), None)], "'e1' (already in the store)"),
        ([("qa", rec(8), None), ("other", rec(8), None)], "'e8' (twice in this batch)"),
    ],
)
def test_duplicate_id_refuses_whole_batch_and_is_logged(
    store: EvalStore, batch: list[tuple[str, Record, str | None]], dup: str
) -> None:
    store.append([("qa", rec(1), None)])
    head = store.head()
    with pytest.raises(EvalStoreError, match="duplicate item_id") as err:
        store.append(batch)
    assert dup in str(err.value)
    assert store.head() == head and store.count() == 1 and store.verify().ok
    [entry] = store.audit()
    assert entry.operation == "append" and dup in entry.detail


def test_unstorable_record_is_refused_before_writing(store: EvalStore) -> None:
    bad = Record(id="b1", shape="chat", messages=())  # would not read back
    with pytest.raises(EvalStoreError, match="b1"):
        store.append([("qa", bad, None)])
    with pytest.raises(EvalStoreError, match="suite"):
        store.append([("", rec(1), None)])
    assert store.count() == 0


def _append_worker(path: str, worker: int, n: int) -> None:
    with EvalStore(path) as s:
        for i in range(n):
            s.append([(f"suite{worker}", rec(f"{worker}-{i}"), None)])


def test_concurrent_appends_from_processes_do_not_fork_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "eval.sqlite"
    EvalStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_worker, args=(str(path), w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with EvalStore(path) as s:
        assert s.count() == 100
        assert s.suites() == {f"suite{w}": 25 for w in range(4)}
        result = s.verify()
        assert result.ok and result.rows == 100
        assert [i.seq for i in s.iter_items()] == list(range(1, 101))
