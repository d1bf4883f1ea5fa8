"""Where the stores live: embedded SQLite files (the default) or a PostgreSQL server.

The three stores that hold user text (training store, eval store, serving log) are written
once against a common SQL subset and open either a SQLite file under the workspace or a schema
on a server (``[storage] backend = "postgres"``). On the server each stage connects as its own
role (:data:`ROLES`), and the grants in ``schema.sql`` make the database refuse what the code
promises never to do: the training side reading eval text, anyone editing the eval store.
The MLflow registry can live on the same server (:func:`registry_uri`).

The server's driver, psycopg, is the ``postgres`` extra: it is imported only where a server is
used, and embedded stores run without it.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import quote, urlencode

from tuneloop.encryption import db
from tuneloop.errors import needs_extra
from tuneloop.storage.target import PgTarget

Store = Literal["train", "eval", "serving"]
Role = Literal["gateway", "train", "eval", "serve", "erasure"]
ROLES: tuple[str, ...] = ("gateway", "train", "eval", "serve", "erasure", "registry")
SCHEMAS: dict[str, str] = {"train": "train", "eval": "evalstore", "serving": "serving"}

__all__ = [
    "ROLES",
    "SCHEMAS",
    "PgTarget",
    "Role",
    "Store",
    "connect",
    "db_errors",
    "integrity_errors",
    "is_postgres",
    "pg_target",
    "registry_uri",
    "role_conninfo",
]


def role_conninfo(base: str, prefix: str, role: str) -> str:
    """``base`` (server and database, no user) as the stage's role."""
    with needs_extra("postgres", "the PostgreSQL backend"):
        from psycopg.conninfo import make_conninfo  # noqa: PLC0415 - psycopg: [postgres] extra

    return make_conninfo(base, user=f"{prefix}{role}")


def pg_target(base: str, prefix: str, store: Store, role: Role, local: Path) -> PgTarget:
    """The server-side location of ``store`` opened by ``role``."""
    return PgTarget(role_conninfo(base, prefix, role), SCHEMAS[store], f"{prefix}{role}", local)


def registry_uri(base: str, prefix: str) -> str:
    """An SQLAlchemy URL for MLflow on the same server, as the registry role, in schema mlflow."""
    with needs_extra("postgres", "the PostgreSQL backend"):
        from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415 - psycopg: [postgres] extra

    params: dict[str, Any] = {k: v for k, v in conninfo_to_dict(base).items() if v is not None}
    dbname = str(params.pop("dbname", ""))
    params.pop("user", None)
    params["options"] = "-c search_path=mlflow"
    user = quote(f"{prefix}registry")
    return f"postgresql+psycopg://{user}@/{quote(dbname)}?{urlencode(params)}"


def is_postgres(conn: object) -> bool:
    """Whether a store's connection is a server connection (not embedded SQLite)."""
    return bool(getattr(conn, "server_side", False))


def connect(target: Path | PgTarget, **sqlite_kwargs: Any) -> sqlite3.Connection:
    """Open a store: a SQLite file (through SQLCipher where the workspace is encrypted) or,
    for a :class:`PgTarget`, a server connection that implements the part of
    ``sqlite3.Connection`` the stores use (see ``pg.py``)."""
    if isinstance(target, PgTarget):
        with needs_extra("postgres", "the PostgreSQL backend"):
            from tuneloop.storage.pg import PgConnection  # noqa: PLC0415 - psycopg: [postgres] extra

        return cast(sqlite3.Connection, PgConnection(target))
    return db.connect(target, **sqlite_kwargs)


def _server_errors(name: str) -> tuple[type[Exception], ...]:
    """The server driver's errors called ``name`` in ``pg.py``, once a server store was opened:
    before that none can be raised, and psycopg need not be installed."""
    pg = sys.modules.get("tuneloop.storage.pg")
    return cast(tuple[type[Exception], ...], getattr(pg, name)) if pg is not None else ()


def db_errors() -> tuple[type[Exception], ...]:
    """Database errors of every driver (sqlite3, SQLCipher, psycopg)."""
    return (*db.errors(), *_server_errors("ERRORS"))


def integrity_errors() -> tuple[type[Exception], ...]:
    """Constraint violations of every driver (a duplicate id, say)."""
    return (*db.integrity_errors(), *_server_errors("INTEGRITY_ERRORS"))
