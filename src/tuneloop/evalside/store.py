"""The eval store: the only place evaluation text lives, append-only and hash-chained.

Why it is built this way:

- **Append-only, enforced by the database.** An evaluation item that can be edited or removed
  after a model was scored against it makes every earlier report unreproducible, and a quiet edit
  is the easiest way to hide leakage. So the API refuses updates and deletes, and ``BEFORE UPDATE``
  / ``BEFORE DELETE`` triggers make SQLite itself refuse them for any client, raw SQL included.
  Refusals that pass through this API are recorded in ``refused_writes`` (in their own transaction,
  because the refused one is rolled back). A refusal raised by a trigger for some other client
  cannot be logged by the database: ``RAISE(ABORT)`` undoes everything its statement did.
- **Hash chain.** Triggers can be dropped by anyone holding the file. Every row therefore carries
  ``row_hash = sha256(prev_hash || canonical_json(row))``, and :meth:`EvalStore.verify` recomputes
  the whole chain, so an edited, deleted, reordered or inserted row is found even when the triggers
  were removed first. :meth:`EvalStore.head` (the last row's hash) is the eval store *version*: the
  contamination index and the contamination certificates are keyed by it, so any change to eval
  content changes the key. Passing an earlier head to ``verify(known_head=...)`` also catches
  truncation of the tail and a wholesale rewrite of the chain, which no chain can show by itself.
- **One writer at a time.** Appends run in ``BEGIN IMMEDIATE``: the write lock is taken before the
  previous hash is read, so appends from several processes queue up instead of forking the chain.
- **Erasure without breaking the chain.** A person may ask for their data to be erased (GDPR
  art. 17), eval items from their traffic included. So the chain commits to each item's text
  through ``content_hash = sha256(salt || record_json)`` with a random salt per row, not to the
  text itself: erasing sets ``record_json`` and ``salt`` to NULL, the chain still verifies, and
  without the salt the hash no longer confirms a guess of the text. The only UPDATE the trigger
  lets through is exactly that, and only for an item already listed in the append-only
  ``erasures`` table; ``verify`` checks that every row without text has its erasure record.
  Erased items are no eval items any more: readers skip them, and :meth:`EvalStore.version`
  (what the contamination index and certificates are keyed by) changes with every erasure.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

from tuneloop import storage
from tuneloop.encryption import db as encrypted_db
from tuneloop.errors import EvalStoreError, InputError
from tuneloop.records import Record, record_from_obj
from tuneloop.storage import PgTarget

SCHEMA_VERSION = 2
ZERO_HASH = "0" * 64
APPEND_ONLY_MESSAGE = "eval store is append-only"
_PAGE = 1000
_BUSY_TIMEOUT_S = 60.0


def _append_only_trigger(table: str, event: str, message: str) -> str:
    """A trigger that makes SQLite itself refuse ``event`` on ``table``, for every client."""
    name = f"{table}_no_{event.lower()}"
    return (
        f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {event} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
    )


_ERASURE_ONLY = (
    "NEW.record_json IS NULL AND NEW.salt IS NULL AND NEW.seq IS OLD.seq "
    "AND NEW.item_id IS OLD.item_id AND NEW.suite IS OLD.suite "
    "AND NEW.content_hash IS OLD.content_hash AND NEW.window IS OLD.window "
    "AND NEW.created_at IS OLD.created_at AND NEW.prev_hash IS OLD.prev_hash "
    "AND NEW.row_hash IS OLD.row_hash "
    "AND EXISTS (SELECT 1 FROM erasures e WHERE e.item_id = OLD.item_id)"
)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS schema_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS items (
        seq INTEGER PRIMARY KEY,
        item_id TEXT UNIQUE NOT NULL,
        suite TEXT NOT NULL,
        record_json TEXT,
        salt TEXT,
        content_hash TEXT NOT NULL,
        window TEXT,
        created_at TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        row_hash TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS items_suite ON items(suite)",
    """CREATE TABLE IF NOT EXISTS refused_writes (
        at TEXT NOT NULL,
        operation TEXT NOT NULL,
        detail TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS erasures (
        item_id TEXT NOT NULL,
        erased_at TEXT NOT NULL,
        request_id TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS erasures_item ON erasures(item_id)",
    f"CREATE TRIGGER IF NOT EXISTS items_no_update BEFORE UPDATE ON items "
    f"WHEN NOT ({_ERASURE_ONLY}) BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END",
    _append_only_trigger("items", "DELETE", APPEND_ONLY_MESSAGE),
    # The log of refusals is evidence too, so it is append-only as well; so are erasures.
    _append_only_trigger("refused_writes", "UPDATE", "refused_writes is append-only"),
    _append_only_trigger("refused_writes", "DELETE", "refused_writes is append-only"),
    _append_only_trigger("erasures", "UPDATE", "erasures is append-only"),
    _append_only_trigger("erasures", "DELETE", "erasures is append-only"),
)
_ITEM_TRIGGERS = ("items_no_update", "items_no_delete")
_COLUMNS = (  # "window" is quoted: a reserved word in PostgreSQL
    'seq, item_id, suite, record_json, salt, content_hash, "window", created_at, prev_hash, '
    "row_hash"
)


@dataclass(frozen=True, slots=True)
class EvalItem:
    """One stored evaluation item, as read back from the store."""

    seq: int
    item_id: str
    suite: str
    record: Record
    window: str | None
    created_at: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of recomputing the chain; ``first_bad_seq`` points at the first broken row."""

    ok: bool
    rows: int
    first_bad_seq: int | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class RefusedWrite:
    """One write the store refused, from the ``refused_writes`` audit table."""

    at: str
    operation: str
    detail: str


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: one byte string per value, so hashes are reproducible."""
    text = json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def row_hash(
    prev_hash: str,
    seq: int,
    item_id: str,
    suite: str,
    content_hash: str,
    window: str | None,
    created_at: str,
) -> str:
    """``sha256(prev_hash || canonical_json(row))`` in hex: the link that ties a row to its past.

    The row's text enters through ``content_hash`` only, so erasing the text keeps the link.
    """
    body = {
        "seq": seq,
        "item_id": item_id,
        "suite": suite,
        "content_hash": content_hash,
        "window": window,
        "created_at": created_at,
    }
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_json(body)).hexdigest()


def content_hash(salt: str, record_json: str) -> str:
    """The salted commitment to an item's text that the chain covers."""
    return hashlib.sha256(bytes.fromhex(salt) + record_json.encode("utf-8")).hexdigest()


def iso_week_window(created_at: str | None) -> str | None:
    """The ISO-week label ("2026-W46") of a timestamp, for time-based splits.

    Aware timestamps are converted to UTC first so that every writer labels the same instant the
    same way. An unparseable timestamp gives None rather than an error: the window is a convenience
    for splitting, and a store that cannot be corrected later should not guess.
    """
    if not created_at:
        return None
    try:
        moment = datetime.fromisoformat(created_at.strip())
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class _Pending:
    """An item checked and encoded before the write lock is taken (keeps the lock short)."""

    item_id: str
    suite: str
    record_json: str
    window: str | None


def _encode(suite: str, record: Record, window: str | None) -> _Pending:
    """Validate and serialize one item.

    The JSON is parsed back into a Record here because a row that cannot be read back could never be
    removed from an append-only store; it must be refused before it is written.
    """
    if not isinstance(suite, str) or not suite.strip():
        raise EvalStoreError(f"item {record.id!r}: suite must be a non-empty string")
    if not record.id:
        raise EvalStoreError("an eval item needs a non-empty record id")
    if window is not None and not isinstance(window, str):
        raise EvalStoreError(f"item {record.id!r}: window must be a string or None")
    try:
        record_json = canonical_json(record.to_dict()).decode("utf-8")
        record_from_obj(json.loads(record_json))
    except (TypeError, ValueError, InputError) as exc:
        raise EvalStoreError(f"item {record.id!r} cannot be stored: {exc}") from exc
    if window is None:
        window = iso_week_window(record.created_at)
    return _Pending(record.id, suite, record_json, window)


def _item(row: sqlite3.Row) -> EvalItem:
    return EvalItem(
        seq=row["seq"],
        item_id=row["item_id"],
        suite=row["suite"],
        record=record_from_obj(json.loads(row["record_json"])),
        window=row["window"],
        created_at=row["created_at"],
    )


class EvalStore:
    """The append-only, hash-chained store of evaluation items (evaluator side only)."""

    def __init__(self, target: Path | str | PgTarget) -> None:
        """``target``: the SQLite file, or the ``evalstore`` schema on a server as one role.

        On a server the schema, triggers and grants are ``tuneloop db init``'s (the roles
        may not create anything); the roles other than the evaluator's see the chain and the
        ids, not the text, and a read of the text fails with a one-line StorageError.
        """
        self.path = target.local if isinstance(target, PgTarget) else Path(target)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves; sqlite3's implicit
        # transactions would take the write lock too late (after reading the previous hash).
        if isinstance(target, PgTarget):
            self._conn = storage.connect(target)
            self._pg = True
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = storage.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
            self._conn.row_factory = encrypted_db.row_factory(self._conn)
            self._pg = False
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA secure_delete=ON")  # freed pages are zeroed (erasure)
        # SQLite's tables have rowid; the server's have a seq column for the same order.
        self._order = "seq" if self._pg else "rowid"
        self._init_schema()

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> EvalStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds the database write lock from its first statement."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _init_schema(self) -> None:
        """Create the tables and triggers (idempotent, so reopening re-arms dropped triggers)."""
        if self._pg:
            query = "SELECT value FROM schema_meta WHERE key = 'schema_version'"
            row = self._conn.execute(query).fetchone()
            self._check_version(row["value"] if row else "(none: run `tuneloop db init`)")
            return
        with self._write() as conn:
            conn.execute(_SCHEMA[0])
            before = conn.execute("SELECT value FROM schema_meta WHERE key = 'schema_version'")
            if (row := before.fetchone()) is not None and row["value"] == "1":
                _migrate_v1(conn)
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO schema_meta(key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            found = conn.execute(
                "SELECT value FROM schema_meta WHERE key = 'schema_version'"
            ).fetchone()["value"]
        self._check_version(found)

    def _check_version(self, found: str) -> None:
        if found != str(SCHEMA_VERSION):
            raise EvalStoreError(
                f"{self.path}: eval store schema version {found}, this tuneloop reads "
                f"{SCHEMA_VERSION}; upgrade tuneloop"
            )

    # -- writes ------------------------------------------------------------------------------

    def append(self, items: Sequence[tuple[str, Record, str | None]]) -> list[str]:
        """Append ``(suite, record, window)`` items in one transaction; return their item ids.

        ``window=None`` means "derive it from the record's created_at" (its ISO week). The batch is
        all or nothing: a duplicate item id refuses the whole batch, and the refusal is logged.
        """
        pending = [_encode(suite, record, window) for suite, record, window in items]
        if not pending:
            return []
        try:
            with self._write() as conn:
                self._insert(conn, pending)
        except _DuplicateIdError as dup:
            self._refuse("append", dup.detail)
            raise EvalStoreError(
                f"eval store refused a batch of {len(pending)} items: {dup.detail}; nothing was "
                "written (ids are permanent: give a new item a new id)"
            ) from None
        return [p.item_id for p in pending]

    def _insert(self, conn: sqlite3.Connection, pending: list[_Pending]) -> None:
        """Chain and insert rows; must run under the write lock so the tip cannot move."""
        tip = conn.execute("SELECT seq, row_hash FROM items ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (tip["seq"], tip["row_hash"]) if tip else (0, ZERO_HASH)
        created_at = _now()
        seen: set[str] = set()
        for p in pending:
            seq += 1
            salt = secrets.token_hex(16)
            commit = content_hash(salt, p.record_json)
            digest = row_hash(prev, seq, p.item_id, p.suite, commit, p.window, created_at)
            row = (seq, p.item_id, p.suite, p.record_json, salt, commit, p.window, created_at,
                   prev, digest)  # fmt: skip
            try:
                conn.execute(f"INSERT INTO items({_COLUMNS}) VALUES ({', '.join('?' * 10)})", row)
            except storage.integrity_errors() as exc:
                if "item_id" not in str(exc):
                    raise
                where = "twice in this batch" if p.item_id in seen else "already in the store"
                raise _DuplicateIdError(f"duplicate item_id {p.item_id!r} ({where})") from exc
            seen.add(p.item_id)
            prev = digest

    def update(self, item_id: str, *args: Any, **kwargs: Any) -> NoReturn:
        """Always refuses: an edited eval item would silently invalidate earlier reports."""
        self._refuse("update", f"item_id={item_id!r}")
        raise EvalStoreError(
            f"{APPEND_ONLY_MESSAGE}: items cannot be updated; add a new item instead"
        )

    def delete(self, item_id: str) -> NoReturn:
        """Always refuses: retire an item by adding a new one, never by removing history."""
        self._refuse("delete", f"item_id={item_id!r}")
        raise EvalStoreError(
            f"{APPEND_ONLY_MESSAGE}: items cannot be deleted; add a new item instead"
        )

    def _refuse(self, operation: str, detail: str) -> None:
        """Log a refused write in its own transaction (the refused one was rolled back)."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO refused_writes(at, operation, detail) VALUES (?, ?, ?)",
                (_now(), operation, detail),
            )

    # -- reads -------------------------------------------------------------------------------

    def _rows(
        self, after: int = 0, suite: str | None = None, erased: bool = False
    ) -> Iterator[sqlite3.Row]:
        """Rows with seq > ``after`` in seq order, read a page at a time (erased rows only
        with ``erased``: they are no eval items any more).

        Paging (rather than one long-lived cursor) keeps no read statement open between yields, so
        a caller may append on the same store while iterating.
        """
        where = "seq > ?" + (" AND suite = ?" if suite is not None else "")
        where += "" if erased else " AND record_json IS NOT NULL"
        while True:
            params: tuple[Any, ...] = (after, suite) if suite is not None else (after,)
            page = self._conn.execute(
                f"SELECT {_COLUMNS} FROM items WHERE {where} ORDER BY seq LIMIT {_PAGE}", params
            ).fetchall()
            yield from page
            if len(page) < _PAGE:
                return
            after = page[-1]["seq"]

    def iter_items(self, suite: str | None = None) -> Iterator[EvalItem]:
        """All items (or one suite's) in append order."""
        return (_item(row) for row in self._rows(0, suite))

    def items_since(self, seq: int) -> Iterator[EvalItem]:
        """Items appended after ``seq``: what an incremental contamination-index update needs."""
        return (_item(row) for row in self._rows(seq))

    def suites(self) -> dict[str, int]:
        """Item count per suite (erased items are not counted)."""
        rows = self._conn.execute(
            "SELECT suite, COUNT(*) AS n FROM items WHERE record_json IS NOT NULL "
            "GROUP BY suite ORDER BY suite"
        ).fetchall()
        return {row["suite"]: row["n"] for row in rows}

    def count(self) -> int:
        """Items that are not erased."""
        query = "SELECT COUNT(*) FROM items WHERE record_json IS NOT NULL"
        return int(self._conn.execute(query).fetchone()[0])

    def version(self) -> str:
        """What the eval set is now: the head, changed by every erasure as by every append.

        The contamination index and dataset certificates are keyed by it, so an index that
        still holds an erased item's hashes is seen to be stale and rebuilt.
        """
        query = f"SELECT item_id FROM erasures ORDER BY {self._order}"
        erased = [r[0] for r in self._conn.execute(query)]
        head = self.head()
        if not erased:
            return head
        return hashlib.sha256(canonical_json([head, erased])).hexdigest()

    def find(self, user_id: str | None = None, conversation_id: str | None = None) -> list[str]:
        """Ids of the (not erased) items that came from a user or a conversation."""
        where, args = [], []
        for field_name, value in (("user_id", user_id), ("conversation_id", conversation_id)):
            if value is not None:
                where.append(
                    f"(record_json::jsonb ->> '{field_name}') = ?" if self._pg
                    else f"json_extract(record_json, '$.{field_name}') = ?"
                )  # fmt: skip
                args.append(value)
        if not where:
            return []
        query = (
            f"SELECT item_id FROM items WHERE record_json IS NOT NULL AND ({' OR '.join(where)})"
        )
        return [r[0] for r in self._conn.execute(query, args)]

    def erase(self, item_ids: Sequence[str], request_id: str) -> int:
        """Remove the text of these items for good; the chain and the ids stay. Returns how
        many were erased.

        The erasure is recorded first (the trigger allows the update only for a recorded
        item); afterwards the freed pages are zeroed and the file rewritten, so the text is
        not left behind in free pages or the write-ahead log.
        """
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return 0
        now = _now()
        with self._write() as conn:
            marks = ",".join("?" * len(ids))
            live = [r[0] for r in conn.execute(
                f"SELECT item_id FROM items WHERE record_json IS NOT NULL AND item_id IN ({marks})",
                ids,
            )]  # fmt: skip
            conn.executemany(
                "INSERT INTO erasures(item_id, erased_at, request_id) VALUES (?, ?, ?)",
                [(i, now, request_id) for i in live],
            )
            conn.executemany(
                "UPDATE items SET record_json = NULL, salt = NULL WHERE item_id = ?",
                [(i,) for i in live],
            )
        self.compact()
        return len(live)

    def erased(self) -> list[tuple[str, str, str]]:
        """(item id, when, request id) of every erasure, oldest first."""
        rows = self._conn.execute(
            f"SELECT item_id, erased_at, request_id FROM erasures ORDER BY {self._order}"
        )
        return [tuple(r) for r in rows]

    def compact(self) -> None:
        """Rewrite the file and empty the write-ahead log: no freed page keeps old text.

        On a server this is the owner's ``VACUUM FULL`` (see docs/scale.md, "PostgreSQL")."""
        if self._pg:
            return
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.execute("VACUUM")
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def head(self) -> str:
        """The last row's hash, or the zero hash: the eval store version the index is keyed by."""
        row = self._conn.execute("SELECT row_hash FROM items ORDER BY seq DESC LIMIT 1").fetchone()
        return str(row["row_hash"]) if row else ZERO_HASH

    def audit(self) -> list[RefusedWrite]:
        """Every write refused through this API, oldest first."""
        rows = self._conn.execute(
            f"SELECT at, operation, detail FROM refused_writes ORDER BY {self._order}"
        ).fetchall()
        return [RefusedWrite(row["at"], row["operation"], row["detail"]) for row in rows]

    # -- integrity ---------------------------------------------------------------------------

    def verify(self, known_head: str | None = None) -> VerifyResult:
        """Recompute the whole chain; report the first row that breaks it.

        Finds edited rows (their hash no longer matches), deleted rows (a gap in seq or a broken
        prev_hash link), and reordered or inserted rows (seq is inside the hash). ``known_head``, a
        head recorded earlier (e.g. by the contamination index), must still be on the chain: that
        catches a truncated tail or a chain recomputed from scratch. Missing append-only triggers
        are reported too, since the chain then only detects tampering instead of preventing it.
        """
        prev, expected, rows = ZERO_HASH, 1, 0
        head_seen = known_head is None or known_head == ZERO_HASH
        erased = {item_id for item_id, _, _ in self.erased()}
        for row in self._rows(erased=True):
            problem = _row_problem(row, expected, prev, erased)
            if problem is not None:
                return VerifyResult(False, rows, row["seq"], problem)
            prev, expected, rows = row["row_hash"], expected + 1, rows + 1
            head_seen = head_seen or prev == known_head
        if not head_seen:
            problem = f"known head {known_head} is not on the chain (rows removed or rewritten)"
            return VerifyResult(False, rows, rows + 1, problem)
        missing = [name for name in _ITEM_TRIGGERS if not self._has_trigger(name)]
        if missing:
            return VerifyResult(False, rows, None, f"append-only triggers missing: {missing}")
        return VerifyResult(True, rows)

    def _has_trigger(self, name: str) -> bool:
        query = (
            "SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'evalstore' "
            "AND c.relname = 'items' AND t.tgenabled <> 'D' AND t.tgname = ?"
            if self._pg
            else "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?"
        )
        return self._conn.execute(query, (name,)).fetchone() is not None


def _row_problem(row: sqlite3.Row, expected_seq: int, prev: str, erased: set[str]) -> str | None:
    """Why ``row`` breaks the chain, or None when it links correctly to ``prev``."""
    seq = row["seq"]
    if seq != expected_seq:
        return f"seq {seq} where {expected_seq} was expected (rows missing or inserted)"
    if row["prev_hash"] != prev:
        return f"row {seq}: prev_hash does not match the previous row's hash"
    fields = (row["item_id"], row["suite"], row["content_hash"], row["window"], row["created_at"])
    if row_hash(prev, seq, *fields) != row["row_hash"]:
        return f"row {seq}: row_hash does not match its contents (row modified)"
    if row["record_json"] is None or row["salt"] is None:
        if row["record_json"] is not None or row["salt"] is not None:
            return f"row {seq}: half erased (text or salt left behind; row modified)"
        if row["item_id"] not in erased:
            return f"row {seq}: text removed without an erasure record (row modified)"
        return None
    if content_hash(row["salt"], row["record_json"]) != row["content_hash"]:
        return f"row {seq}: text does not match its content hash (row modified)"
    return None


def _migrate_v1(conn: sqlite3.Connection) -> None:
    """Schema 1 chained the text itself; schema 2 chains a salted hash of it (see above).

    Every row is copied in order under the new chain; the old head is kept in ``schema_meta``
    (``migrated_from_v1_head``) as the link to reports and certificates made before.
    """
    tip = conn.execute("SELECT row_hash FROM items ORDER BY seq DESC LIMIT 1").fetchone()
    for statement in ("DROP TRIGGER IF EXISTS items_no_update",
                      "DROP TRIGGER IF EXISTS items_no_delete", "DROP INDEX IF EXISTS items_suite",
                      "ALTER TABLE items RENAME TO items_v1", _SCHEMA[1]):  # fmt: skip
        conn.execute(statement)
    prev = ZERO_HASH
    for old in conn.execute("SELECT * FROM items_v1 ORDER BY seq").fetchall():
        salt = secrets.token_hex(16)
        commit = content_hash(salt, old["record_json"])
        digest = row_hash(prev, old["seq"], old["item_id"], old["suite"], commit, old["window"],
                          old["created_at"])  # fmt: skip
        conn.execute(
            f"INSERT INTO items({_COLUMNS}) VALUES ({', '.join('?' * 10)})",
            (old["seq"], old["item_id"], old["suite"], old["record_json"], salt, commit,
             old["window"], old["created_at"], prev, digest),
        )  # fmt: skip
        prev = digest
    conn.execute("DROP TABLE items_v1")
    conn.execute("UPDATE schema_meta SET value = ? WHERE key = 'schema_version'",
                 (str(SCHEMA_VERSION),))  # fmt: skip
    conn.execute(
        "INSERT OR REPLACE INTO schema_meta(key, value) VALUES ('migrated_from_v1_head', ?)",
        (tip["row_hash"] if tip else ZERO_HASH,),
    )


class _DuplicateIdError(Exception):
    """Internal: aborts the append transaction; turned into a logged EvalStoreError."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
