"""The serving log: every response and every piece of feedback, append-only.

It is the serving side's only store and the source of truth for three readers: the canary
judge (per-arm errors, latency, feedback), ``tuneloop ingest --serving-log`` (responses become
interactions, feedback is joined by response id) and anyone auditing what a model said.
SQLite in WAL mode, so readers never block the server; ``BEFORE UPDATE`` / ``BEFORE DELETE``
triggers make the database itself refuse edits. The server writes through one background
thread that commits in small batches, so a request never waits on the disk.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tuneloop import storage
from tuneloop.encryption import db as encrypted_db
from tuneloop.encryption import files as sealed_files
from tuneloop.erasure import compact
from tuneloop.storage import PgTarget
from tuneloop.workspace import SERVING_LOG_FALLBACK

logger = logging.getLogger("tuneloop.serve.log")  # the name operators filter on

# The tenant of a server run without API keys: its users keep their ids as they are, while
# another tenant's are prefixed with the tenant (two tenants may both have a user "42").
LOCAL_TENANT = "local"
APPEND_ONLY = "the serving log is append-only"
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS responses (
        seq INTEGER PRIMARY KEY,
        response_id TEXT UNIQUE NOT NULL,
        created_at TEXT NOT NULL,
        created_unix REAL NOT NULL,
        tenant TEXT NOT NULL,
        user_id TEXT,
        conversation_id TEXT,
        messages_json TEXT NOT NULL,
        answer TEXT,
        status TEXT NOT NULL CHECK (status IN ('ok', 'error', 'cancelled')),
        error TEXT,
        finish_reason TEXT,
        arm TEXT NOT NULL,
        model_version TEXT NOT NULL,
        adapter_sha256 TEXT,
        canary_id TEXT,
        latency_s REAL,
        ttft_s REAL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        degenerate INTEGER NOT NULL DEFAULT 0,
        erased_at TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS responses_canary ON responses(canary_id)",
    """CREATE TABLE IF NOT EXISTS feedback (
        seq INTEGER PRIMARY KEY,
        feedback_id TEXT UNIQUE NOT NULL,
        response_id TEXT NOT NULL,
        received_at TEXT NOT NULL,
        tenant TEXT NOT NULL,
        thumbs TEXT CHECK (thumbs IN ('up', 'down')),
        rating REAL,
        correction TEXT,
        comment TEXT,
        erased_at TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS feedback_response ON feedback(response_id)",
    *(
        f"CREATE TRIGGER IF NOT EXISTS {t}_no_delete BEFORE DELETE ON {t} "
        f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
        for t in ("responses", "feedback")
    ),
)
# What an erasure clears (GDPR art. 17): the text and who it was; everything the canary judge
# and audits count (status, arm, version, latency, thumbs, rating) stays.
ERASED = {
    "responses": {"messages_json": "'[]'", "answer": "NULL", "error": "NULL",
                  "user_id": "NULL", "conversation_id": "NULL"},
    "feedback": {"correction": "NULL", "comment": "NULL"},
}  # fmt: skip


def _erasure_only_trigger(db: sqlite3.Connection, table: str) -> None:
    """UPDATE is refused unless it is exactly an erasure (columns from the live table)."""
    columns = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
    cleared = ERASED[table]
    same = [f"NEW.{c} IS OLD.{c}" for c in columns if c not in cleared and c != "erased_at"]
    gone = [f"NEW.{c} IS {v}" for c, v in cleared.items()]
    rule = " AND ".join(["NEW.erased_at IS NOT NULL", "OLD.erased_at IS NULL", *gone, *same])
    db.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
    db.execute(
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} WHEN NOT ({rule}) "
        f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
    )


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class ResponseRow:
    response_id: str
    tenant: str
    messages: list[dict[str, str]]
    arm: str
    model_version: str
    status: str = "ok"
    answer: str | None = None
    error: str | None = None
    finish_reason: str | None = None
    user_id: str | None = None
    conversation_id: str | None = None
    adapter_sha256: str | None = None
    canary_id: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    degenerate: bool = False
    created_unix: float = field(default_factory=time.time)
    created_at: str = field(default_factory=now_iso)


@dataclass(slots=True)
class FeedbackRow:
    feedback_id: str
    response_id: str
    tenant: str
    thumbs: str | None = None
    rating: float | None = None
    correction: str | None = None
    comment: str | None = None
    received_at: str = field(default_factory=now_iso)


def _connect(target: Path | PgTarget) -> sqlite3.Connection:
    if isinstance(target, PgTarget):
        return storage.connect(target)  # thread-safe: psycopg serializes its connection
    target.parent.mkdir(parents=True, exist_ok=True)
    db = storage.connect(target, timeout=30, isolation_level=None, check_same_thread=False)
    db.row_factory = encrypted_db.row_factory(db)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def _insert(db: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    cols = ", ".join(row)
    marks = ", ".join("?" * len(row))
    db.execute(f"INSERT OR IGNORE INTO {table} ({cols}) VALUES ({marks})", list(row.values()))


def _response_values(row: ResponseRow) -> dict[str, Any]:
    values = asdict(row)
    values["messages_json"] = json.dumps(values.pop("messages"), ensure_ascii=False)
    values["degenerate"] = int(row.degenerate)
    return values


class ServingLog:
    """Reads and writes; ``writer()`` starts the background thread the server appends through."""

    def __init__(self, target: Path | PgTarget) -> None:
        """``target``: the SQLite file, or the ``serving`` schema on a server (whose tables,
        triggers and grants ``tuneloop db init`` made)."""
        self.path = target.local if isinstance(target, PgTarget) else target
        self._db = _connect(target)
        self._pg = storage.is_postgres(self._db)
        if not self._pg:
            self._create()
        self._lock = threading.Lock()

    def _create(self) -> None:
        for statement in SCHEMA:
            self._db.execute(statement)
        for table in ERASED:  # logs written before erasure existed get the column
            if "erased_at" not in {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN erased_at TEXT")
            _erasure_only_trigger(self._db, table)

    def close(self) -> None:
        self._db.close()

    def append(self, rows: list[ResponseRow | FeedbackRow]) -> None:
        """Append in one transaction (rows already present, by id, are left as they are)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    if isinstance(row, ResponseRow):
                        _insert(self._db, "responses", _response_values(row))
                    else:
                        _insert(self._db, "feedback", asdict(row))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def response(self, response_id: str) -> sqlite3.Row | None:
        rows = self._query("SELECT * FROM responses WHERE response_id = ?", (response_id,))
        return rows[0] if rows else None

    def responses_after(self, seq: int, before_unix: float, limit: int = 2000) -> list[sqlite3.Row]:
        """Responses past ``seq`` created before ``before_unix``, in order (one page)."""
        sql = "SELECT * FROM responses WHERE seq > ? AND created_unix <= ? ORDER BY seq LIMIT ?"
        return self._query(sql, (seq, before_unix, limit))

    def pending(self, response_seq: int, before_unix: float, feedback_seq: int) -> tuple[int, int]:
        """(responses past ``response_seq`` created before ``before_unix``, feedback past
        ``feedback_seq``): what the next ``ingest --serving-log`` would read."""
        sql = "SELECT COUNT(*) FROM responses WHERE seq > ? AND created_unix <= ?"
        responses = int(self._query(sql, (response_seq, before_unix))[0][0])
        sql = "SELECT COUNT(*) FROM feedback WHERE seq > ?"
        feedback = int(self._query(sql, (feedback_seq,))[0][0])
        return responses, feedback

    def feedback_after(self, seq: int, limit: int = 5000) -> list[sqlite3.Row]:
        """Feedback past ``seq``, each with its response's ``response_seq`` (None if unknown)."""
        sql = (
            "SELECT f.*, r.seq AS response_seq FROM feedback f LEFT JOIN responses r "
            "ON r.response_id = f.response_id WHERE f.seq > ? ORDER BY f.seq LIMIT ?"
        )
        return self._query(sql, (seq, limit))

    def feedback_for(self, response_ids: list[str]) -> dict[str, list[sqlite3.Row]]:
        found: dict[str, list[sqlite3.Row]] = {}
        for start in range(0, len(response_ids), 500):
            chunk = response_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT * FROM feedback WHERE response_id IN ({marks}) ORDER BY seq"
            for row in self._query(sql, tuple(chunk)):
                found.setdefault(row["response_id"], []).append(row)
        return found

    _WITH_FEEDBACK = """
            SELECT r.arm, r.status, r.latency_s, r.degenerate, r.created_unix, r.answer,
                (SELECT thumbs FROM feedback f WHERE f.response_id = r.response_id
                 AND thumbs IS NOT NULL ORDER BY f.seq DESC LIMIT 1) AS thumbs,
                (SELECT rating FROM feedback f WHERE f.response_id = r.response_id
                 AND rating IS NOT NULL ORDER BY f.seq DESC LIMIT 1) AS rating
            FROM responses r WHERE """

    def canary_rows(self, canary_id: str) -> list[sqlite3.Row]:
        """Every response of one canary analysis, with its latest thumbs and rating."""
        where = "r.canary_id = ? AND r.arm IN ('production', 'canary')"
        return self._query(self._WITH_FEEDBACK + where, (canary_id,))

    def production_rows(self, model_version: str, before_unix: float) -> list[sqlite3.Row]:
        """Responses that ``model_version`` gave as production, with their latest feedback."""
        where = "r.arm = 'production' AND r.model_version = ? AND r.created_unix < ?"
        return self._query(self._WITH_FEEDBACK + where, (model_version, before_unix))

    _WHO = (
        "(((tenant = 'local' AND user_id = ?) OR tenant || ':' || user_id = ?) "
        "OR conversation_id = ?) AND erased_at IS NULL"
    )

    @staticmethod
    def _who_args(users: Sequence[str], conversations: Sequence[str]) -> list[tuple[Any, ...]]:
        return [(u, u, None) for u in users] + [(None, None, c) for c in conversations]

    def texts_of(self, users: Sequence[str], conversations: Sequence[str]) -> list[str]:
        """Every text the log holds of these users and conversations: messages, answers,
        corrections and comments (what an erasure must remove)."""
        texts: list[str] = []
        for arg in self._who_args(users, conversations):
            rows = self._query(f"SELECT * FROM responses WHERE {self._WHO}", arg)
            for r in rows:
                texts += [m["content"] for m in json.loads(r["messages_json"])]
                texts += [t for t in (r["answer"], r["error"]) if t]
                for f in self.feedback_for([r["response_id"]]).get(r["response_id"], []):
                    texts += [t for t in (f["correction"], f["comment"]) if t]
        return texts

    def texts_except(self, users: Sequence[str], conversations: Sequence[str]) -> set[str]:
        """Every text the log holds of anyone else: what another person also wrote is theirs
        too, and stays when these users are erased."""
        mine = {
            r[0]
            for arg in self._who_args(users, conversations)
            for r in self._db.execute(f"SELECT seq FROM responses WHERE {self._WHO}", arg)
        }
        texts: set[str] = set()
        for r in self._query("SELECT * FROM responses WHERE erased_at IS NULL"):
            if r["seq"] not in mine:
                texts.update(m["content"] for m in json.loads(r["messages_json"]))
                texts.update(t for t in (r["answer"], r["error"]) if t)
        sql = (
            "SELECT f.correction, f.comment, r.seq FROM feedback f "
            "LEFT JOIN responses r ON r.response_id = f.response_id"
        )
        for f in self._query(sql):
            if f["seq"] not in mine:
                texts.update(t for t in (f["correction"], f["comment"]) if t)
        return texts

    def erase(self, users: Sequence[str], conversations: Sequence[str]) -> dict[str, int]:
        """Clear the text of these users' (``tenant:user``, or the user id for the local
        tenant) and conversations' responses and their feedback; rewrite the file."""
        now, who = now_iso(), self._WHO
        args = self._who_args(users, conversations)
        counts = {"responses": 0, "feedback": 0}
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for arg in args:
                    ids = [r[0] for r in self._db.execute(
                        f"SELECT response_id FROM responses WHERE {who}", arg)]  # fmt: skip
                    for start in range(0, len(ids), 500):
                        chunk = ids[start : start + 500]
                        marks = ",".join("?" * len(chunk))
                        counts["feedback"] += self._db.execute(
                            f"UPDATE feedback SET correction = NULL, comment = NULL, "
                            f"erased_at = ? WHERE erased_at IS NULL AND response_id IN ({marks})",
                            (now, *chunk),
                        ).rowcount
                    counts["responses"] += self._db.execute(
                        "UPDATE responses SET messages_json = '[]', answer = NULL, error = NULL, "
                        f"user_id = NULL, conversation_id = NULL, erased_at = ? WHERE {who}",
                        (now, *arg),
                    ).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if not self._pg:
                compact(self._db)  # on a server: VACUUM by the owner (docs/scale.md, "PostgreSQL")
        return counts

    def expire(self, before_unix: float) -> dict[str, int]:
        """Clear the text of responses created before ``before_unix`` and of their feedback,
        as an erasure does (retention: what the canary judge and audits count stays)."""
        now = now_iso()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                old = "SELECT response_id FROM responses WHERE created_unix < ?"
                feedback = self._db.execute(
                    "UPDATE feedback SET correction = NULL, comment = NULL, erased_at = ? "
                    f"WHERE erased_at IS NULL AND response_id IN ({old})",
                    (now, before_unix),
                ).rowcount
                responses = self._db.execute(
                    "UPDATE responses SET messages_json = '[]', answer = NULL, error = NULL, "
                    "user_id = NULL, conversation_id = NULL, erased_at = ? "
                    "WHERE erased_at IS NULL AND created_unix < ?",
                    (now, before_unix),
                ).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if (responses or feedback) and not self._pg:
                compact(self._db)
        return {"responses": responses, "feedback": feedback}

    def writer(self, on_failure: Callable[[], None] = lambda: None) -> LogWriter:
        return LogWriter(self, on_failure)


class LogWriter:
    """Appends on a background thread, committing whatever queued up since the last commit.

    A batch the database refuses three times (disk full, file locked for minutes) goes to
    ``log-unwritten.jsonl`` beside the log, so that no response is lost without a trace.
    """

    def __init__(self, log: ServingLog, on_failure: Callable[[], None] = lambda: None) -> None:
        self.log = log
        self._failed = on_failure
        self.fallback = log.path.with_name(SERVING_LOG_FALLBACK)
        self._queue: queue.Queue[ResponseRow | FeedbackRow | None] = queue.Queue()
        self._idle = threading.Event()
        self._idle.set()
        self._stopping = False
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="tuneloop-serving-log", daemon=True)
        self._thread.start()

    def put(self, row: ResponseRow | FeedbackRow) -> None:
        self._idle.clear()
        self._queue.put(row)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything put so far is committed."""
        self._queue.put(None)
        self._idle.wait(timeout)

    def close(self) -> None:
        self._stopping = True
        self.flush()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            batch = [] if first is None else [first]
            while not self._queue.empty() and len(batch) < 500:
                item = self._queue.get_nowait()
                if item is not None:
                    batch.append(item)
            if batch:
                try:
                    self._write(batch)
                except Exception:  # the thread must outlive any one batch
                    logger.exception("could not write %d serving-log rows anywhere", len(batch))
                    self._failed()
            if self._queue.empty():
                self._idle.set()
                if self._stopping:
                    return

    def _write(self, batch: list[ResponseRow | FeedbackRow]) -> None:
        for attempt in range(3):
            try:
                self.log.append(batch)
                return
            except storage.db_errors():
                self.errors += 1
                logger.warning("serving log write failed (attempt %d of 3)", attempt + 1)
                self._failed()
                time.sleep(0.2 * 2**attempt)
        logger.error("the serving log refused %d rows: kept in %s", len(batch), self.fallback)
        self.fallback.parent.mkdir(parents=True, exist_ok=True)
        with self.fallback.open("a", encoding="utf-8") as fh:
            for row in batch:
                kind = "response" if isinstance(row, ResponseRow) else "feedback"
                line = json.dumps({"kind": kind, **asdict(row)}, ensure_ascii=False)
                fh.write(sealed_files.seal_line(self.fallback, line) + "\n")
