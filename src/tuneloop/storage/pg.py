"""A PostgreSQL connection that speaks the small part of ``sqlite3.Connection`` the stores use.

The stores were written against SQLite; rather than keep two copies of every query, the
statements are written once in the common subset (``?`` placeholders, ``INSERT OR IGNORE``,
explicit ``BEGIN IMMEDIATE`` / ``COMMIT``) and translated here. What truly differs between
the two databases (the schema, triggers, JSON access, compaction) is written out per backend
in the stores and in ``schema.sql``; nothing else is rewritten.

- ``?`` becomes ``%s`` (outside quoted literals), and ``%`` is escaped.
- ``INSERT OR IGNORE INTO t ...`` becomes ``INSERT INTO t ... ON CONFLICT DO NOTHING``.
- ``BEGIN IMMEDIATE`` (SQLite: take the write lock now) becomes ``BEGIN`` and a
  transaction-scoped advisory lock per store, so appends to a hash chain queue up exactly as
  they do in SQLite, without the table-lock privilege the roles do not have.
- Rows are tuples that can also be indexed by column name, like ``sqlite3.Row``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import psycopg
import psycopg.errors
from psycopg.rows import RowMaker

from tuneloop.errors import StorageError
from tuneloop.storage.target import PgTarget

# What the stores' ``except`` clauses catch from this driver (storage.db_errors and
# storage.integrity_errors), beside sqlite3's and SQLCipher's.
ERRORS: tuple[type[Exception], ...] = (psycopg.Error,)
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (psycopg.IntegrityError,)


class Row(tuple[Any, ...]):
    """A result row: a tuple, and also ``row["column"]`` as with ``sqlite3.Row``."""

    _index: dict[str, int] = {}  # noqa: RUF012 - set per column list by _row_class

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


@lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"_index": {n: i for i, n in enumerate(names)}})


def _row_factory(cursor: Any) -> RowMaker[Row]:
    names = tuple(c.name for c in cursor.description or ())
    cls = _row_class(names)
    return lambda values: cls(values)


_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)


@lru_cache(maxsize=1024)
def translate(sql: str, with_params: bool) -> str:
    """SQLite's dialect of our statements to PostgreSQL's (see the module docstring)."""
    if _INSERT_OR_IGNORE.match(sql):
        sql = _INSERT_OR_IGNORE.sub("INSERT INTO", sql, count=1) + " ON CONFLICT DO NOTHING"
    if not with_params:
        return sql
    out: list[str] = []
    quoted = False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
        if ch == "%":
            out.append("%%")
        elif ch == "?" and not quoted:
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


class PgCursor:
    """The cursor methods the stores call, over a psycopg cursor."""

    def __init__(self, owner: PgConnection) -> None:
        self._owner = owner
        self._cur: psycopg.Cursor[Row] = owner.raw.cursor()

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> PgCursor:
        if sql.strip().upper() == "BEGIN IMMEDIATE":
            self._cur.execute("BEGIN")
            self._cur.execute("SELECT pg_advisory_xact_lock(%s)", (self._owner.lock_key,))
            return self
        with_params = bool(params)
        with self._owner.refusals():
            self._cur.execute(translate(sql, with_params), tuple(params) if params else None)
        return self

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> PgCursor:
        batch = [tuple(r) for r in rows]
        if batch:
            with self._owner.refusals():
                self._cur.executemany(translate(sql, True), batch)
        return self

    def fetchone(self) -> Row | None:
        return self._cur.fetchone()

    def fetchall(self) -> list[Row]:
        return self._cur.fetchall()

    def __iter__(self) -> Iterator[Row]:
        return iter(self._cur)

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def close(self) -> None:
        self._cur.close()


class PgConnection:
    """One autocommit connection as a store's role, with ``search_path`` set to its schema."""

    server_side = True  # what storage.is_postgres looks for (without importing psycopg)

    def __init__(self, target: PgTarget) -> None:
        self.target = target
        self.lock_key = zlib.crc32(f"tuneloop.{target.schema}".encode()) - 2**31
        try:
            self.raw: psycopg.Connection[Row] = psycopg.connect(
                target.conninfo,
                autocommit=True,
                row_factory=_row_factory,
                options=f"-c search_path={target.schema}",
                connect_timeout=10,
            )
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageError(
                f"postgres ({target.role}): cannot connect: {first}; check [storage] postgres "
                "in tuneloop.toml and that `tuneloop db init` has created the roles"
            ) from None
        self.row_factory: Any = None  # sqlite3 compatibility: rows are always Row here

    @contextmanager
    def refusals(self) -> Iterator[None]:
        """A statement the database refused for this role becomes one clear line."""
        try:
            yield
        except psycopg.errors.InsufficientPrivilege as exc:
            first = (str(exc).strip().splitlines() or ["permission denied"])[0]
            raise StorageError(
                f"postgres ({self.target.role}, schema {self.target.schema}): {first}"
            ) from exc

    def cursor(self) -> PgCursor:
        return PgCursor(self)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> PgCursor:
        return self.cursor().execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> PgCursor:
        return self.cursor().executemany(sql, rows)

    def close(self) -> None:
        self.raw.close()
