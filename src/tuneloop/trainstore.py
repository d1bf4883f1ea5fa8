"""The training store: every interaction the gateway sent to training, append-only intake.

One SQLite file on the training side (Postgres in production) with:
- ``records``: the raw training records as they arrived (after the contamination check);
- ``routes``: which side each user / conversation was sent to, so routing stays sticky.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import orjson

from tuneloop.gateway import Side
from tuneloop.records import Record, record_from_obj

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
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class TrainStore:
    """Append records and routing decisions; read them back in arrival order."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
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

    def commit(self, records: Iterable[Record], routes: Mapping[str, Side], batch: str) -> int:
        """Append records and new routing decisions in one transaction; return rows added."""
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
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return len(rows)

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def iter_records(self) -> Iterator[Record]:
        """Every training record in arrival order (read in pages; the file may be large)."""
        last = 0
        while True:
            rows = self._db.execute(
                "SELECT seq, record_json FROM records WHERE seq > ? ORDER BY seq LIMIT 2000",
                (last,),
            ).fetchall()
            if not rows:
                return
            for seq, raw in rows:
                last = seq
                yield record_from_obj(orjson.loads(raw), self.path, seq)
