"""The training store: every interaction the gateway sent to training, append-only intake.

One SQLite file on the training side, or the ``train`` schema on a PostgreSQL server, with:
- ``records``: the raw training records as they arrived (after the contamination check);
- ``routes``: which side each user / conversation was sent to, so routing stays sticky;
- ``feedback``: thumbs, ratings and corrections that arrived after their record was stored
  (a correction a day later); records are read back with their latest feedback applied;
- ``cursors``: how far each incremental source (the serving log) has been read, committed in
  the same transaction as the records it produced, so that nothing is ingested twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from tuneloop import storage
from tuneloop.erasure import compact
from tuneloop.records import Record, Side, record_from_obj
from tuneloop.storage import PgTarget

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    id TEXT UNIQUE NOT NULL,
    user_id TEXT,
    conversation_id TEXT,
    created_at TEXT,
    ingested_at TEXT NOT NULL,
    batch TEXT NOT NULL,
    record_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_user ON records(user_id);
CREATE TABLE IF NOT EXISTS routes (
    key TEXT PRIMARY KEY,
    side TEXT NOT NULL CHECK (side IN ('train', 'eval')),
    first_seen TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    seq INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL,
    source_key TEXT UNIQUE NOT NULL,
    received_at TEXT NOT NULL,
    thumbs TEXT,
    rating REAL,
    correction TEXT
);
CREATE INDEX IF NOT EXISTS feedback_record ON feedback(record_id);
CREATE TABLE IF NOT EXISTS cursors (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class LateFeedback:
    """Feedback for a record already in the store; ``source_key`` makes applying it idempotent."""

    record_id: str
    source_key: str
    thumbs: str | None = None
    rating: float | None = None
    correction: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class TrainStore:
    """Append records and routing decisions; read them back in arrival order."""

    def __init__(self, target: Path | PgTarget) -> None:
        """``target``: the SQLite file, or the ``train`` schema on a server (made by
        ``tuneloop db init``, so nothing is created here)."""
        self.path = target.local if isinstance(target, PgTarget) else target
        if not isinstance(target, PgTarget):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = storage.connect(target, isolation_level=None, timeout=30)
        if not storage.is_postgres(self._db):
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TrainStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def known_sides(self) -> dict[str, Side]:
        rows = self._db.execute("SELECT key, side FROM routes").fetchall()
        return dict(rows)

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        chunk: list[str] = []
        for rid in ids:
            chunk.append(rid)
            if len(chunk) == 500:
                found |= self._existing(chunk)
                chunk = []
        return found | self._existing(chunk) if chunk else found

    def _existing(self, chunk: list[str]) -> set[str]:
        marks = ",".join("?" * len(chunk))
        rows = self._db.execute(f"SELECT id FROM records WHERE id IN ({marks})", chunk)
        return {r[0] for r in rows}

    def commit(
        self,
        records: Iterable[Record],
        routes: Mapping[str, Side],
        batch: str,
        feedback: Sequence[LateFeedback] = (),
        cursors: Mapping[str, int] | None = None,
    ) -> int:
        """Append records, routes, late feedback and cursor moves in one transaction.

        Returns the number of records added.
        """
        now = _now()
        rows = [
            (r.id, r.user_id, r.conversation_id, r.created_at, now, batch,
             orjson.dumps(r.to_dict()).decode())
            for r in records
        ]  # fmt: skip
        with closing(self._db.cursor()) as cur:
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.executemany(
                    "INSERT INTO records (id, user_id, conversation_id, created_at, ingested_at,"
                    " batch, record_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                cur.executemany(
                    "INSERT OR IGNORE INTO routes (key, side, first_seen) VALUES (?, ?, ?)",
                    [(k, s, now) for k, s in routes.items()],
                )
                cur.executemany(
                    "INSERT OR IGNORE INTO feedback (record_id, source_key, received_at, thumbs,"
                    " rating, correction) VALUES (?, ?, ?, ?, ?, ?)",
                    [(f.record_id, f.source_key, now, f.thumbs, f.rating, f.correction)
                     for f in feedback],
                )  # fmt: skip
                cur.executemany(
                    "INSERT INTO cursors (name, value) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                    list((cursors or {}).items()),
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return len(rows)

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def cursor(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def subject_records(self, user_id: str | None, conversation_id: str | None) -> list[Record]:
        """Every record of a user (and of the user's conversations) or of a conversation."""
        conversations = {conversation_id} if conversation_id else set()
        if user_id is not None:
            found = self._db.execute(
                "SELECT DISTINCT conversation_id FROM records WHERE user_id = ?", (user_id,)
            )
            conversations |= {r[0] for r in found if r[0]}
        marks = ",".join("?" * len(conversations)) or "NULL"
        rows = self._db.execute(
            f"SELECT seq, id, record_json FROM records WHERE user_id = ? "  # = NULL: never
            f"OR conversation_id IN ({marks}) ORDER BY seq",
            (user_id, *sorted(conversations)),
        ).fetchall()
        return [record_from_obj(orjson.loads(raw), self.path, seq) for seq, _, raw in rows]

    def erase(self, record_ids: Sequence[str], route_keys: Sequence[str]) -> dict[str, int]:
        """Delete records, their late feedback and routing entries; rewrite the file so that
        no freed page or write-ahead log keeps their text. Returns what was removed."""
        removed = {"records": 0, "feedback": 0, "routes": 0}
        with closing(self._db.cursor()) as cur:
            cur.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(record_ids), 500):
                    chunk = list(record_ids[start : start + 500])
                    marks = ",".join("?" * len(chunk))
                    cur.execute(f"DELETE FROM feedback WHERE record_id IN ({marks})", chunk)
                    removed["feedback"] += cur.rowcount
                    cur.execute(f"DELETE FROM records WHERE id IN ({marks})", chunk)
                    removed["records"] += cur.rowcount
                for key in route_keys:
                    cur.execute("DELETE FROM routes WHERE key = ?", (key,))
                    removed["routes"] += cur.rowcount
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        if not storage.is_postgres(self._db):
            compact(self._db)  # on a server: VACUUM by the owner (docs/scale.md, "PostgreSQL")
        return removed

    def newest(self, n: int) -> list[Record]:
        """The ``n`` most recently stored records, oldest first, with late feedback applied."""
        if n <= 0:
            return []
        rows = self._db.execute(
            "SELECT seq, id, record_json FROM records ORDER BY seq DESC LIMIT ?", (n,)
        ).fetchall()[::-1]
        late = self._feedback_for([r[1] for r in rows])
        return [with_feedback(record_from_obj(orjson.loads(raw), self.path, seq), late.get(rid, []))
                for seq, rid, raw in rows]  # fmt: skip

    def iter_records(self) -> Iterator[Record]:
        """Every training record in arrival order, with its late feedback applied (in pages)."""
        last = 0
        while True:
            rows = self._db.execute(
                "SELECT seq, id, record_json FROM records WHERE seq > ? ORDER BY seq LIMIT 2000",
                (last,),
            ).fetchall()
            if not rows:
                return
            late = self._feedback_for([r[1] for r in rows])
            for seq, rid, raw in rows:
                last = seq
                record = record_from_obj(orjson.loads(raw), self.path, seq)
                yield with_feedback(record, late.get(rid, []))

    def _feedback_for(self, ids: list[str]) -> dict[str, list[tuple[str | None, ...]]]:
        found: dict[str, list[tuple[str | None, ...]]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT record_id, thumbs, rating, correction FROM feedback "
                f"WHERE record_id IN ({marks}) ORDER BY seq",
                chunk,
            )
            for rid, *values in rows:
                found.setdefault(rid, []).append(tuple(values))
        return found


def with_feedback(record: Record, feedback: Sequence[tuple[Any, ...]]) -> Record:
    """Apply (thumbs, rating, correction) rows, oldest first: each kind's latest value wins."""
    for thumbs, rating, correction in feedback:
        changes: dict[str, object] = {}
        if thumbs is not None:
            changes["thumbs"] = thumbs
        if rating is not None:
            changes["rating"] = float(rating)
        if correction is not None:
            changes["correction"] = correction
        record = record.with_content(**changes)
    return record
