"""The PostgreSQL server the store tests run against (started by tests/postgres_server.sh, which
`make test` runs): a template database initialised once by `tuneloop db init`, and a fresh copy
of it per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PGTEST_DIR = Path(os.environ.get("PGTEST_DIR", "/tmp/tuneloop-pgtest"))
PREFIX = "tuneloop_"
_TEMPLATE = "tuneloop_template"


def admin_conninfo(dbname: str = "postgres") -> str:
    """The server's superuser, on the given database; skips the test when there is no server."""
    url = PGTEST_DIR / "url"
    if not url.is_file():
        why = PGTEST_DIR / "UNAVAILABLE"
        reason = why.read_text().strip() if why.is_file() else "tests/postgres_server.sh not run"
        pytest.skip(f"no PostgreSQL server for the store tests: {reason}")
    base = url.read_text().strip()
    return base.replace("dbname=postgres", f"dbname={dbname}")


def base_conninfo(dbname: str) -> str:
    """What tuneloop.toml's [storage] postgres holds: the server and database, no user."""
    return admin_conninfo(dbname).replace(" user=postgres", "")


def _ensure_template() -> None:
    import psycopg

    from tuneloop.storage.setup import init_database

    with psycopg.connect(admin_conninfo(), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(7321)")  # test processes running side by side
        try:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (_TEMPLATE,))
            if found.fetchone() is None:
                conn.execute(f"CREATE DATABASE {_TEMPLATE}")
                init_database(admin_conninfo(_TEMPLATE), PREFIX)
        finally:
            conn.execute("SELECT pg_advisory_unlock(7321)")


def fresh_database() -> str:
    """A new database copied from the initialised template; returns its base conninfo."""
    import psycopg

    _ensure_template()
    name = f"tl_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {_TEMPLATE}")
    return base_conninfo(name)


def drop_database(base: str) -> None:
    import psycopg

    name = base.split("dbname=")[1].split()[0]
    with psycopg.connect(admin_conninfo(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh database with the stores' schemas, roles and grants; yields its base conninfo."""
    admin_conninfo()  # skips when there is no server
    base = fresh_database()
    try:
        yield base
    finally:
        drop_database(base)
