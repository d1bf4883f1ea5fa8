"""Dataset versions: the immutable, content-addressed output of curation.

A version is one folder ``<root>/ds-<hash12>/`` holding ``data.parquet`` (the records, sorted by
(split, id)), ``rejects.jsonl`` (every record curation dropped, with its reason) and
``manifest.json`` (inputs, blocks and their parameters, counts, the contamination certificate and
the sha256 of each file).

Why immutable and content-addressed: a model's lineage names a dataset version, so the version
must mean the same bytes forever. The id is a hash of the record content plus the parameters that
produced it (never the time), so re-running the same curation gives the same id instead of a
near-duplicate, any change gives a new one, and "which versions contain this user's records?" has
one answer when an erasure request arrives. A version is written in a temporary folder and renamed
into place, so a reader sees a whole version or none; its files are made read-only, and
:meth:`DatasetStore.verify` checks them against the manifest.
"""

from __future__ import annotations

import builtins
import hashlib
import math
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tuneloop.encryption import files as sealed_files
from tuneloop.erasure import Subject
from tuneloop.errors import WorkspaceError
from tuneloop.jsonl import atomic_writer, dumps
from tuneloop.records import Message, Record

SCHEMA_VERSION = 1
SPLITS = ("train", "validation")
DATA_FILE = "data.parquet"
REJECTS_FILE = "rejects.jsonl"
MANIFEST_FILE = "manifest.json"
VERSION_PREFIX = "ds-"
INDEX_VERSION_KEY = "index_version"  # the certificate field that enters the content hash
ERASED_HASH_KEY = "content_hash_after_erasure"
READ_ONLY = 0o444

PARQUET_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("split", pa.string()),
        ("shape", pa.string()),
        ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("prompt", pa.string()),
        ("completion", pa.string()),
        ("text", pa.string()),
        ("user_id", pa.string()),
        ("conversation_id", pa.string()),
        ("source", pa.string()),
        ("created_at", pa.string()),
        ("rating", pa.float64()),
        ("thumbs", pa.string()),
        ("correction", pa.string()),
        ("meta_json", pa.string()),
    ]
)
_PLAIN_FIELDS = (
    "prompt",
    "completion",
    "text",
    "user_id",
    "conversation_id",
    "source",
    "created_at",
    "thumbs",
    "correction",
)


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """A version on disk; ``created`` is False when an identical version already existed."""

    version: str
    path: Path
    manifest: dict[str, Any]
    created: bool


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """One line of ``tuneloop datasets list``."""

    version: str
    created_at: str
    parent: str | None
    records: int
    train: int
    validation: int
    dropped: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DatasetDiff:
    """What changed between two versions: records by id, split sizes, and parameters."""

    old: str
    new: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    splits: dict[str, dict[str, int]] = field(default_factory=dict)
    blocks_changed: dict[str, dict[str, Any]] = field(default_factory=dict)
    inputs_changed: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- canonical content ---------------------------------------------------------------------------


def canonical_json(obj: Any) -> bytes:
    """Sorted-key compact JSON: equal content always gives equal bytes (and equal hashes)."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS, default=str)


def split_of(record: Record) -> str:
    """The record's split (``meta["split"]``, default train); anything else is refused."""
    split = record.meta.get("split", "train")
    if split not in SPLITS:
        raise WorkspaceError(
            f"record {record.id} has split {split!r}; set meta['split'] to train or validation"
        )
    return str(split)


def record_row(record: Record) -> dict[str, Any]:
    """The Parquet row of a record; also exactly what the content hash covers."""
    row: dict[str, Any] = {"id": record.id, "split": split_of(record), "shape": record.shape}
    row["messages"] = [{"role": m.role, "content": m.content} for m in record.messages]
    row.update({name: getattr(record, name) for name in _PLAIN_FIELDS})
    row["rating"] = rating(record)
    row["meta_json"] = meta_json(record)
    return row


def rating(record: Record) -> float | None:
    if record.rating is None:
        return None
    if not math.isfinite(record.rating):
        raise WorkspaceError(f"record {record.id}: rating is {record.rating}; use a finite number")
    return float(record.rating)


def meta_json(record: Record) -> str:
    """Canonical JSON of ``meta``, refusing what JSON would silently change (NaN, tuples, ...)."""
    try:
        encoded = orjson.dumps(record.meta, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:
        raise WorkspaceError(
            f"record {record.id}: meta is not JSON ({exc}); use plain JSON values"
        ) from None
    if orjson.loads(encoded) != record.meta:
        raise WorkspaceError(
            f"record {record.id}: meta changes when written as JSON (NaN, infinity or a tuple?); "
            "use plain JSON values"
        )
    return encoded.decode("utf-8")


def row_record(row: dict[str, Any]) -> Record:
    """The exact inverse of :func:`record_row`."""
    return Record(
        id=row["id"],
        shape=row["shape"],
        messages=tuple(Message(m["role"], m["content"]) for m in row["messages"] or ()),
        rating=row["rating"],
        meta=orjson.loads(row["meta_json"]),
        **{name: row[name] for name in _PLAIN_FIELDS},
    )


def sorted_rows(records: Iterable[Record]) -> list[dict[str, Any]]:
    """Rows ordered by (split, id), refusing duplicate ids (a diff or erasure needs unique ids)."""
    rows = sorted((record_row(r) for r in records), key=lambda row: (row["split"], row["id"]))
    seen: set[str] = set()
    for row in rows:
        if row["id"] in seen:
            raise WorkspaceError(
                f"record id {row['id']} appears twice; give each record its own id"
            )
        seen.add(row["id"])
    return rows


def defining_params(
    inputs: dict[str, Any], blocks: Sequence[dict[str, Any]], certificate: dict[str, Any]
) -> dict[str, Any]:
    """The parameters that define a version besides its records (counts and times excluded)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "inputs": inputs,
        "blocks": [{"name": b.get("name"), "params": b.get("params", {})} for b in blocks],
        INDEX_VERSION_KEY: certificate.get(INDEX_VERSION_KEY),
    }


def content_hash(rows: Iterable[dict[str, Any]], params: dict[str, Any]) -> str:
    """sha256 over the parameters and then each canonical row, in (split, id) order."""
    digest = hashlib.sha256(canonical_json(params) + b"\n")
    for row in rows:
        digest.update(canonical_json(row) + b"\n")
    return digest.hexdigest()


# --- writing -------------------------------------------------------------------------------------


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    table = pa.Table.from_pylist(rows, schema=PARQUET_SCHEMA)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A version's Parquet file, decrypted first where it is sealed."""
    if sealed_files.sealed(path):
        return pq.read_table(pa.BufferReader(sealed_files.read_bytes(path)), columns=columns)
    return pq.read_table(path, columns=columns)


def write_file(folder: Path, name: str, data: bytes, sealed: bool = False) -> dict[str, Any]:
    """Write one read-only file; return its manifest entry (sha256 and size of ``data``).

    ``sealed``: a file of records, encrypted where the workspace is; the manifest's hash is of
    the plain bytes, so a version's identity does not depend on its key.
    """
    path = folder / name
    with atomic_writer(path, sealed=sealed) as fh:
        fh.write(data)
    path.chmod(READ_ONLY)
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def drops_by_reason(drop_rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(f"{row.get('block')}:{row.get('reason')}" for row in drop_rows)
    return dict(sorted(counts.items()))


def record_counts(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    splits = Counter(row["split"] for row in rows)
    return {
        "records": len(rows),
        **{split: splits[split] for split in SPLITS},
        "by_shape": dict(sorted(Counter(row["shape"] for row in rows).items())),
        "by_source": dict(sorted(Counter(row["source"] or "(none)" for row in rows).items())),
    }


def read_manifest(folder: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = orjson.loads((folder / MANIFEST_FILE).read_bytes())
    return manifest


# --- the store -----------------------------------------------------------------------------------


class DatasetStore:
    """All dataset versions under one folder (``<workspace>/train/datasets``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def create(
        self,
        records: Sequence[Record],
        *,
        parent: str | None,
        inputs: dict[str, Any],
        blocks: builtins.list[dict[str, Any]],
        drop_rows: builtins.list[dict[str, Any]],
        certificate: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> DatasetVersion:
        """Write a new version, or return the existing one with the same content (idempotent)."""
        rows = sorted_rows(records)
        digest = content_hash(rows, defining_params(inputs, blocks, certificate))
        version = VERSION_PREFIX + digest[:12]
        target = self.root / version
        if (target / MANIFEST_FILE).exists():
            return self._existing(target, digest)
        manifest: dict[str, Any] = {
            "version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="microseconds"),
            "parent": parent,
            "inputs": inputs,
            "blocks": blocks,
            "drops_by_reason": drops_by_reason(drop_rows),
            "counts": record_counts(rows),
            "contamination_certificate": certificate,
            "files": {},
            "content_hash": digest,
            "schema_version": SCHEMA_VERSION,
            "extra": extra or {},
        }
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=self.root))
        try:
            data = parquet_bytes(rows)
            manifest["files"][DATA_FILE] = write_file(tmp, DATA_FILE, data, sealed=True)
            rejects = b"".join(dumps(row) for row in drop_rows)
            manifest["files"][REJECTS_FILE] = write_file(tmp, REJECTS_FILE, rejects, sealed=True)
            text = orjson.dumps(manifest, option=orjson.OPT_INDENT_2, default=str)
            write_file(tmp, MANIFEST_FILE, text + b"\n")  # last: a manifest means complete
            tmp.rename(target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if (target / MANIFEST_FILE).exists():  # a concurrent create won the rename
                return self._existing(target, digest)
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return DatasetVersion(version, target, read_manifest(target), created=True)

    def _existing(self, target: Path, digest: str) -> DatasetVersion:
        manifest = read_manifest(target)
        if manifest.get("content_hash") != digest:
            raise WorkspaceError(
                f"{target} holds different content with the same id prefix; move it aside and retry"
            )
        return DatasetVersion(target.name, target, manifest, created=False)

    def versions(self) -> builtins.list[str]:
        """Complete versions, oldest first (temporary folders are not versions)."""
        if not self.root.is_dir():
            return []
        found = [
            (read_manifest(p)["created_at"], p.name)
            for p in self.root.iterdir()
            if p.name.startswith(VERSION_PREFIX) and (p / MANIFEST_FILE).is_file()
        ]
        return [name for _, name in sorted(found)]

    def resolve(self, version: str) -> str:
        """The full id for an id or a unique prefix of one (with or without ``ds-``)."""
        known = self.versions()
        wanted = version if version.startswith(VERSION_PREFIX) else VERSION_PREFIX + version
        if wanted in known:
            return wanted
        matches = [v for v in known if v.startswith(wanted)] if version else []
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise WorkspaceError(
                f"dataset version {version} is ambiguous ({', '.join(matches)}); "
                "give more of the id"
            )
        if not known:
            raise WorkspaceError(
                f"no dataset version {version}; none exist yet, run `tuneloop curate`"
            )
        raise WorkspaceError(f"no dataset version {version}; versions: {', '.join(known)}")

    def path(self, version: str) -> Path:
        return self.root / self.resolve(version)

    def latest(self) -> str | None:
        known = self.versions()
        return known[-1] if known else None

    def show(self, version: str) -> dict[str, Any]:
        """The manifest of a version."""
        return read_manifest(self.path(version))

    def load(self, version: str, split: str | None = None) -> builtins.list[Record]:
        """The records of a version (one split, or all), in (split, id) order, exactly as given."""
        if split is not None and split not in SPLITS:
            raise WorkspaceError(f"unknown split {split!r}; use train or validation")
        table = read_parquet(self.path(version) / DATA_FILE)
        if split is not None:
            table = table.filter(pc.equal(table["split"], split))
        return [row_record(row) for row in table.to_pylist()]

    def verify(self, version: str) -> builtins.list[str]:
        """Problems with a version's files (missing, or sha256/size not as in the manifest)."""
        folder = self.path(version)
        manifest = read_manifest(folder)
        problems = []
        for name, expected in manifest["files"].items():
            path = folder / name
            if not path.is_file():
                problems.append(f"{name}: missing")
                continue
            data = sealed_files.read_bytes(path)
            if hashlib.sha256(data).hexdigest() != expected["sha256"]:
                problems.append(f"{name}: sha256 differs from the manifest (modified)")
            elif len(data) != expected["bytes"]:
                problems.append(f"{name}: size differs from the manifest")
        if not problems:
            problems.extend(self._verify_content(folder, manifest))
        return problems

    def _verify_content(self, folder: Path, manifest: dict[str, Any]) -> builtins.list[str]:
        """Recompute the content hash, so an edited manifest is caught as well (after an
        erasure, the hash of what is left, recorded with the erasure)."""
        rows = [record_row(r) for r in self.load(folder.name)]
        params = defining_params(
            manifest["inputs"], manifest["blocks"], manifest["contamination_certificate"]
        )
        expected = manifest.get(ERASED_HASH_KEY) or manifest["content_hash"]
        if content_hash(rows, params) != expected:
            return [f"{MANIFEST_FILE}: records and parameters do not hash to content_hash"]
        if not folder.name.endswith(manifest["content_hash"][:12]):
            return [f"{folder.name}: folder name does not match content_hash"]
        return []

    def erase(self, version: str, subject: Subject, request_id: str) -> dict[str, int]:
        """Rewrite a version without the subject's records and rejects rows.

        The version keeps its id (models name it in their lineage) and its original
        ``content_hash``; the manifest gains an entry in ``erasures`` and the hash of what is
        left (``content_hash_after_erasure``), so ``verify`` still checks every byte.
        """
        folder = self.path(version)
        manifest = read_manifest(folder)
        records = self.load(version)
        kept = [r for r in records if not subject.found_in(r.to_dict())]
        rejects_path = folder / REJECTS_FILE
        lines = sealed_files.read_bytes(rejects_path).splitlines(keepends=True)
        kept_lines = [x for x in lines if not (x.strip() and subject.found_in(orjson.loads(x)))]
        removed = {"records": len(records) - len(kept), "rejects": len(lines) - len(kept_lines)}
        if not any(removed.values()):
            return removed
        rows = sorted_rows(kept)
        params = defining_params(
            manifest["inputs"], manifest["blocks"], manifest["contamination_certificate"]
        )
        for name in (DATA_FILE, REJECTS_FILE, MANIFEST_FILE):
            (folder / name).chmod(0o644)
        data, rejects = parquet_bytes(rows), b"".join(kept_lines)
        manifest["files"][DATA_FILE] = write_file(folder, DATA_FILE, data, sealed=True)
        manifest["files"][REJECTS_FILE] = write_file(folder, REJECTS_FILE, rejects, sealed=True)
        manifest["counts"] = record_counts(rows)
        manifest[ERASED_HASH_KEY] = content_hash(rows, params)
        manifest.setdefault("erasures", []).append({
            "request_id": request_id, "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "removed_records": removed["records"], "removed_rejects": removed["rejects"],
        })  # fmt: skip
        text = orjson.dumps(manifest, option=orjson.OPT_INDENT_2, default=str)
        write_file(folder, MANIFEST_FILE, text + b"\n")
        return removed

    def ids(self, version: str) -> set[str]:
        """The record ids of a version (one column read)."""
        table = read_parquet(self.path(version) / DATA_FILE, columns=["id"])
        return set(table.column("id").to_pylist())

    def diff(self, v1: str, v2: str) -> DatasetDiff:
        """Records added, removed and changed (by id) from ``v1`` to ``v2``; parameter changes."""
        old_v, new_v = self.resolve(v1), self.resolve(v2)
        old = {row["id"]: row for row in map(record_row, self.load(old_v))}
        new = {row["id"]: row for row in map(record_row, self.load(new_v))}
        m_old, m_new = self.show(old_v), self.show(new_v)
        return DatasetDiff(
            old=old_v,
            new=new_v,
            added=sorted(new.keys() - old.keys()),
            removed=sorted(old.keys() - new.keys()),
            changed=sorted(i for i in old.keys() & new.keys() if old[i] != new[i]),
            splits={
                v: {s: m["counts"][s] for s in SPLITS} for v, m in ((old_v, m_old), (new_v, m_new))
            },
            blocks_changed=changed_keys(
                block_params(m_old["blocks"]), block_params(m_new["blocks"])
            ),
            inputs_changed=changed_keys(m_old["inputs"], m_new["inputs"]),
        )

    def list(self) -> builtins.list[DatasetSummary]:
        """A summary of every version, oldest first."""
        return [summary(read_manifest(self.root / v)) for v in self.versions()]


def summary(manifest: dict[str, Any]) -> DatasetSummary:
    counts = manifest["counts"]
    return DatasetSummary(
        version=manifest["version"],
        created_at=manifest["created_at"],
        parent=manifest["parent"],
        records=counts["records"],
        train=counts["train"],
        validation=counts["validation"],
        dropped=sum(manifest["drops_by_reason"].values()),
    )


def block_params(blocks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Params by block name; a repeated name gets ``#2``, ``#3``... in pipeline order."""
    out: dict[str, Any] = {}
    for block in blocks:
        name, n = str(block.get("name")), 2
        key = name
        while key in out:
            key, n = f"{name}#{n}", n + 1
        out[key] = block.get("params", {})
    return out


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{key: {"old": ..., "new": ...}}`` for every key whose value differs (None when absent)."""
    return {
        key: {"old": old.get(key), "new": new.get(key)}
        for key in sorted(old.keys() | new.keys())
        if canonical_json(old.get(key)) != canonical_json(new.get(key))
    }
