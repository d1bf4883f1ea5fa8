"""Where a registry's adapters are: MLflow records absolute artifact locations.

A workspace copied or moved to another folder keeps a ``mlflow.db`` whose experiment, runs
and versions still point at the old folder's ``artifacts/``: served from the copy, it would
read (and verify) the original workspace's adapters without a word. So opening a registry
whose artifact location is not this workspace's refuses, naming both folders, and
``tuneloop registry relocate`` points the copy's database at its own folder.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlparse

from tuneloop.errors import WorkspaceError

# (table, column) pairs that hold artifact locations in MLflow's SQL schema.
COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
)


class RegistryMovedError(WorkspaceError):
    """The registry's artifacts are in another folder than this workspace's."""


def _folder(uri: str) -> Path:
    parsed = urlparse(uri)
    return Path(unquote(parsed.path) if parsed.scheme == "file" else uri).resolve()


def check_location(recorded: str, artifact_root: Path, name: str) -> None:
    """Refuse a registry whose recorded artifact folder is not ``artifact_root``."""
    if urlparse(recorded).scheme not in ("", "file"):
        return  # an object store: the same for every copy of the workspace
    found, here = _folder(recorded), artifact_root.resolve()
    if found != here:
        raise RegistryMovedError(
            f"registry {name!r} keeps its adapters in {found}, not in {here} (MLflow records "
            "absolute paths: this workspace was copied or moved); run `tuneloop registry "
            "relocate` in this workspace to use its own folder"
        )


def relocate(db: Path, artifact_root: Path, name: str) -> tuple[str, str]:
    """Point every artifact location in the SQLite registry ``db`` at ``artifact_root``;
    return the old and new prefixes. Versions' sha256 manifests are unchanged, so every
    adapter is still verified against what was registered when it is fetched."""
    new = artifact_root.resolve().as_uri()
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn, conn:
        query = "SELECT artifact_location FROM experiments WHERE name = ?"
        rows = conn.execute(query, (name,)).fetchall()
        olds = [r[0] for r in rows if r[0] and r[0].startswith("file:") and r[0] != new]
        for old in olds:
            for table, column in COLUMNS:
                conn.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                    f"WHERE {column} = ? OR substr({column}, 1, ?) = ?",
                    (new, len(old) + 1, old, len(old) + 1, old + "/"),
                )
    return (olds[0] if olds else new), new
