"""SQLite connections, through SQLCipher where the store's workspace is encrypted.

SQLCipher encrypts every page of the database and of its WAL and journal (AES-256, HMAC-SHA512
per page), so nothing of a store is plaintext on disk, temporary files included. The raw key is
given (``x'…'``), so opening skips SQLCipher's PBKDF2 (the key is already random). A wrong key
or a plain store opened as encrypted fails on the first read and says so in one line.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tuneloop.encryption.keys import key_for
from tuneloop.errors import EncryptionError

_PLAIN_HEADER = b"SQLite format 3\x00"


def _sqlcipher() -> Any:
    try:
        from sqlcipher3 import dbapi2  # noqa: PLC0415 - optional: encrypted stores only
    except ImportError:
        raise EncryptionError(
            "encryption needs SQLCipher: pip install sqlcipher3-binary (or set [security] "
            "encryption = false)"
        ) from None
    return dbapi2


def is_plain_sqlite(path: Path) -> bool:
    """Whether ``path`` starts with SQLite's own header (an unencrypted database)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(len(_PLAIN_HEADER))
    except OSError:
        return False
    return head == _PLAIN_HEADER


def connect(path: Path | str, **kwargs: Any) -> sqlite3.Connection:
    """``sqlite3.connect(path, **kwargs)``, encrypted when ``path``'s workspace is."""
    path = Path(path)
    keys = key_for(path)
    if keys is None:
        if path.exists() and path.stat().st_size > 0 and not is_plain_sqlite(path):
            raise EncryptionError(
                f"{path}: is not a plain SQLite database (encrypted?); set [security] "
                "encryption = true and its key in tuneloop.toml"
            )
        plain: sqlite3.Connection = sqlite3.connect(path, **kwargs)
        return plain
    if path.exists() and is_plain_sqlite(path):
        raise EncryptionError(
            f"{path}: is a plain SQLite database in an encrypted workspace; export it with "
            "`sqlcipher` (sqlcipher_export) or turn encryption off"
        )
    module = _sqlcipher()
    conn = module.connect(str(path), **kwargs)
    conn.execute("PRAGMA cipher_log_level = NONE")
    conn.execute(f"PRAGMA key = \"x'{keys.sqlite.hex()}'\"")
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except module.DatabaseError:
        conn.close()
        raise EncryptionError(f"{path}: cannot open: wrong key (security.key)") from None
    return conn  # type: ignore[no-any-return]


def row_factory(conn: sqlite3.Connection) -> Any:
    """The Row class of ``conn``'s own driver (sqlite3's Row rejects SQLCipher cursors)."""
    return _module_of(conn).Row


def _module_of(conn: sqlite3.Connection) -> Any:
    if isinstance(conn, sqlite3.Connection):
        return sqlite3
    return _sqlcipher()


def integrity_errors() -> tuple[type[Exception], ...]:
    """IntegrityError of both drivers, for ``except`` clauses."""
    try:
        from sqlcipher3 import dbapi2  # noqa: PLC0415 - optional: encrypted stores only
    except ImportError:
        return (sqlite3.IntegrityError,)
    return (sqlite3.IntegrityError, dbapi2.IntegrityError)


def errors() -> tuple[type[Exception], ...]:
    """sqlite3.Error of both drivers."""
    try:
        from sqlcipher3 import dbapi2  # noqa: PLC0415 - optional: encrypted stores only
    except ImportError:
        return (sqlite3.Error,)
    return (sqlite3.Error, dbapi2.Error)
