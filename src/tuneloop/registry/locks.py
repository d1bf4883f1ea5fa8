"""Retries on "database is locked" and the file lock that serializes alias moves."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from mlflow.exceptions import MlflowException

_LOCKED_MARKERS = ("database is locked", "database is busy")
ARTIFACTS_LOCK = ".registry.lock"  # in the artifacts folder, for a registry on a server

T = TypeVar("T")
log = logging.getLogger(__name__)


def _is_locked(exc: BaseException) -> bool:
    """True when SQLite refused for lack of a lock: MLflow wraps it, so walk the cause chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if any(marker in str(seen).lower() for marker in _LOCKED_MARKERS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def with_retry(
    op: Callable[[], T], attempts: int = 15, sleep: Callable[[float], None] = time.sleep
) -> T:
    """Run op, retrying "database is locked" with exponential backoff and jitter.

    SQLite's busy timeout does not cover a reader that must upgrade to a writer while another
    writer holds the lock: it fails at once, and the transaction is rolled back, so a retry is
    safe. Jitter keeps twenty processes from retrying in lockstep.
    """
    for attempt in range(attempts):
        try:
            return op()
        except (MlflowException, sqlite3.OperationalError) as exc:
            if not _is_locked(exc) or attempt == attempts - 1:
                raise
            delay = min(2.0, 0.05 * 2**attempt)
            log.debug("database is locked; retry %d in ~%.2fs", attempt + 1, delay)
            sleep(delay / 2 + random.uniform(0, delay / 2))
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def flock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes on this host, released when the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class _QuietLockedErrors(logging.Filter):
    """MLflow logs a traceback for every "database is locked" that we then retry; drop those."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(m in record.getMessage().lower() for m in _LOCKED_MARKERS)


def quiet_mlflow_lock_logs() -> None:
    # MLflow narrates schema creation at INFO on stderr; the CLI promises one-line errors.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logger = logging.getLogger("mlflow.store.db.utils")
    if not any(isinstance(f, _QuietLockedErrors) for f in logger.filters):
        logger.addFilter(_QuietLockedErrors())


def sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def lock_path_for(uri: str, artifact_root: Path | None) -> Path:
    """Beside the SQLite file; else beside local artifacts; else in the temp folder.

    The lock only orders writers on one host: against a shared tracking server, run alias
    moves from one place (the gate job).
    """
    db = sqlite_path(uri)
    if db is not None:
        return db.with_name(db.name + ".lock")
    if artifact_root is not None:
        return artifact_root / ARTIFACTS_LOCK
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"tuneloop-registry-{digest}.lock"
