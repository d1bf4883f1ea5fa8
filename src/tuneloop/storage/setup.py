"""``tuneloop db init``: the roles, schemas, tables, triggers and grants on a PostgreSQL server.

Run once by an administrator (and again after an upgrade: every statement is idempotent).
The roles are created with LOGIN and no password: give them one (``ALTER ROLE … PASSWORD``,
read by libpq from ``~/.pgpass``) or map them to certificates or OS users in ``pg_hba.conf``;
tuneloop.toml names the server, never a secret.
"""

from __future__ import annotations

import re
from importlib import resources

import psycopg
from psycopg import sql

from tuneloop.errors import StorageError
from tuneloop.storage import ROLES

_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


def schema_sql(prefix: str) -> str:
    """schema.sql with the role prefix filled in."""
    if not _PREFIX.match(prefix):
        raise StorageError(
            f"[storage] role_prefix {prefix!r}: use lower-case letters, digits and _ only"
        )
    text = resources.files("tuneloop.storage").joinpath("schema.sql").read_text("utf-8")
    return text.replace("{p}", prefix)


def init_database(admin_conninfo: str, prefix: str) -> list[str]:
    """Create what is missing; return the role names. Needs CREATEROLE and the database's
    ownership (or a superuser)."""
    script = schema_sql(prefix)
    roles = [f"{prefix}{r}" for r in ROLES]
    try:
        with psycopg.connect(admin_conninfo, autocommit=True, connect_timeout=10) as conn:
            for role in roles:
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                if exists.fetchone() is None:
                    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
            dbname = conn.info.dbname
            conn.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(dbname), sql.SQL(", ").join(map(sql.Identifier, roles))
                )
            )
            with conn.transaction():
                conn.execute(script.encode("utf-8"))
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StorageError(f"postgres (admin): `tuneloop db init` failed: {first}") from None
    return roles
