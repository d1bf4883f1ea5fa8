"""Where things live. The training side and the eval side are separate folders.

    <root>/tuneloop.toml
    <root>/train/   store.sqlite (raw training intake, routing table), datasets/, rejects/
    <root>/eval/    evalstore.sqlite — read only by the evaluator (tuneloop.evalside)
    <root>/index/   the contamination index: one-way hashes the training side may read
    <root>/serve/   the serving log (every response and its feedback), canary state, adapters

In production the two sides are separate database roles and buckets; here they are folders,
and no training-side module imports the eval side (a test checks the import graph).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from tuneloop.config import TuneloopConfig, load_config, overlay
from tuneloop.config_file import default_toml
from tuneloop.encryption.keys import create_key_file
from tuneloop.errors import WorkspaceError
from tuneloop.jsonl import atomic_writer
from tuneloop.storage import PgTarget, Role, Store, pg_target

CONFIG_NAME = "tuneloop.toml"
ENV_VAR = "TUNELOOP_WORKSPACE"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @cached_property
    def config(self) -> TuneloopConfig:
        return load_config(self.config_path)

    def configure(self, changes: Mapping[str, Any]) -> Workspace:
        """Set settings by their dotted names in this workspace's ``tuneloop.toml`` (validated
        first, written atomically) and return the workspace as it now reads, e.g.
        ``ws.configure({"train.max_steps": 16})``: the typed way to change settings in code."""
        text = overlay(self.config_path.read_text(encoding="utf-8"), changes, self.config_path)
        with atomic_writer(self.config_path, "w") as fh:
            fh.write(text)
        return Workspace(self.root)

    @property
    def train_dir(self) -> Path:
        return self.root / "train"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    @property
    def train_store_path(self) -> Path:
        return self.train_dir / "store.sqlite"

    @property
    def eval_store_path(self) -> Path:
        return self.eval_dir / "evalstore.sqlite"

    @property
    def datasets_dir(self) -> Path:
        return self.train_dir / "datasets"

    @property
    def rejects_dir(self) -> Path:
        return self.train_dir / "rejects"

    @property
    def serve_dir(self) -> Path:
        return self.root / "serve"

    @property
    def serving_log_path(self) -> Path:
        return self.serve_dir / "log.sqlite"

    def has_registry(self) -> bool:
        """Whether a model registry may hold versions (on a server: its schema is always there)."""
        return self.config.storage.backend == "postgres" or (self.root / "mlflow.db").is_file()

    def has_serving_log(self) -> bool:
        """Whether a server has logged anything yet (on a server: the schema is always there)."""
        return self.config.storage.backend == "postgres" or self.serving_log_path.is_file()

    def store(self, name: Store, role: Role) -> Path | PgTarget:
        """Where ``name`` is, opened by ``role``: the SQLite file, or the store's schema on
        the server as that role (``[storage] backend = "postgres"``)."""
        local = {"train": self.train_store_path, "eval": self.eval_store_path,
                 "serving": self.serving_log_path}[name]  # fmt: skip
        cfg = self.config.storage
        if cfg.backend == "sqlite":
            return local
        return pg_target(cfg.postgres, cfg.role_prefix, name, role, local)


def init_workspace(root: Path, name: str | None = None, encrypt: bool = False) -> Workspace:
    """Create the layout and a default ``tuneloop.toml`` (an existing one is kept).

    ``encrypt``: make a key outside the workspace (:func:`encryption.keys.create_key_file`) and
    turn encryption at rest on in the new ``tuneloop.toml`` (``tuneloop init`` does, unless told
    not to)."""
    ws = Workspace(root.resolve())
    text = None
    if not ws.config_path.exists():
        key = "env:TUNELOOP_KEY"
        if encrypt:  # first: a refused key folder leaves nothing behind
            key = f"file:{create_key_file(ws.root, name or ws.root.name)}"
        text = default_toml(name or ws.root.name, encrypt, key)
    for folder in (ws.train_dir, ws.eval_dir, ws.index_dir, ws.datasets_dir, ws.rejects_dir):
        folder.mkdir(parents=True, exist_ok=True)
    if text is not None:
        ws.config_path.write_text(text, encoding="utf-8")
    ws.config  # noqa: B018 - validate now, so a bad existing file is reported at init
    return ws


def find_workspace(explicit: Path | None = None, start: Path | None = None) -> Workspace:
    """--workspace, else $TUNELOOP_WORKSPACE, else the nearest tuneloop.toml upward; its
    settings are read and checked here, so that every command that opens a workspace refuses
    a broken tuneloop.toml before it reads or writes anything."""
    ws = _locate(explicit, start)
    ws.config  # noqa: B018 - raises ConfigError naming the file, line and fix
    return ws


def _locate(explicit: Path | None, start: Path | None) -> Workspace:
    if explicit is None and os.environ.get(ENV_VAR):
        explicit = Path(os.environ[ENV_VAR])
    if explicit is not None:
        if not (explicit / CONFIG_NAME).is_file():
            raise WorkspaceError(
                f"{explicit}: not a tuneloop workspace (no {CONFIG_NAME}); "
                f"run `tuneloop init {explicit}`"
            )
        return Workspace(explicit.resolve())
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return Workspace(folder)
    raise WorkspaceError(
        f"no tuneloop workspace found (no {CONFIG_NAME} in {here} or above); "
        "run `tuneloop init DIR` or pass --workspace DIR"
    )
