"""Where things live: every file and folder a workspace holds is named here, once.

    <root>/tuneloop.toml          the settings
    <root>/train/                 the training side
        store.sqlite              raw training intake and the routing table
        datasets/ ▸               dataset versions (datasets.py)
        rejects/                  what ingestion dropped, with why
        replay/ ▸                 the replay buffer's versions (train/replay.py)
        privacy_ledger.json       every private round's ε and δ, per user
    <root>/eval/                  the eval side — read only by the evaluator (tuneloop.evalside)
        evalstore.sqlite          the eval store
        reports/                  one report per model scored: <model>-<index version>.json
        cache/ ▸                  the evaluator's answer cache (evalside/evaluator.py)
        models/v<N>/              registered adapters fetched to be scored
    <root>/index/                 the contamination index: one-way hashes the training side may read
        versions/ ▸, CURRENT      one folder per version (contamination/persist.py), the current one
    <root>/serve/                 what the server keeps
        log.sqlite                the serving log: every response and its feedback
        log-unwritten.jsonl       responses the log refused to take (kept, not lost)
        canary.json, .canary.lock the canary's state, and the lock every change takes
        server.json               a running server says so here
        adapters/                 registered adapters fetched to be served
        vllm-template.jinja       the chat template vLLM needs for tool calls
    <root>/runs/<run id>/         a training run (the trainer's output folder)
        best/                     the adapter the run registers
        checkpoints/ ▸            resumable checkpoints (train/checkpoint.py)
        metrics.jsonl             loss per step, eval loss per evaluation
        lineage.json              what produced the run
    <root>/runs/init/             production's adapter, fetched to warm-start a run
    <root>/runs/federated/<run id>/  a federated run: round-<n>/ per round, report.json
    <root>/cycles/                the loop
        cycle-<n>/ ▸              one round (state/cycle.py)
        .lock, triggers.jsonl     the running cycle's lock; every evaluation of the triggers
    <root>/erasures/<request>.json  one receipt per erasure
    <root>/mlflow.db              the model registry (MLflow's)
    <root>/artifacts/ ▸           the registered adapters' files (MLflow's, see registry/)
    <root>/registry-audit.jsonl   every alias move and canary step: who and why
    <root>/report.html            the report page
    <root>/<cycle.inbox>/         new interaction files a cycle collects (a setting)
    <root>/demo-data/, .tuneloop-demo, leaked-again.jsonl   the demo's and the leak experiment's

Each name is a constant below, listed in :data:`NAMES`, and reached through a property or method
of :class:`Workspace`; no other module spells one (``tests/test_boundaries.py`` checks). Code
handed one of these folders rather than the workspace (the trainer its run folder, the server
and the canary the serve folder) joins the constants, imported from here; the index and the
replay buffer keep their versions through :func:`current_version` and :func:`set_current`.
Below a folder marked ▸, the component handed it owns the layout: it declares its names as
constants at the top of its module, and another module that needs one asks that component.

The stores that hold user text (training store, eval store, serving log) and the registry may
instead live on a PostgreSQL server (``[storage] backend = "postgres"``): then their files here
never appear, and whether one exists is asked of the workspace (:meth:`Workspace.has_registry`,
:meth:`Workspace.has_serving_log`), never of the disk.

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

# CONFIG_NAME is declared in encryption.keys: the key lookup walks up to it.
from tuneloop.encryption.keys import CONFIG_NAME, create_key_file
from tuneloop.errors import WorkspaceError
from tuneloop.jsonl import atomic_writer
from tuneloop.storage import PgTarget, Role, Store, pg_target, registry_uri

ENV_VAR = "TUNELOOP_WORKSPACE"

# -- the names (the tree in the module docstring) ---------------------------------------------
TRAIN = "train"
EVAL = "eval"
INDEX = "index"
SERVE = "serve"
RUNS = "runs"
CYCLES = "cycles"
ERASURES = "erasures"
TRAIN_STORE = "store.sqlite"
DATASETS = "datasets"
REJECTS = "rejects"
REPLAY = "replay"
PRIVACY_LEDGER = "privacy_ledger.json"
EVAL_STORE = "evalstore.sqlite"
EVAL_REPORTS = "reports"
EVAL_CACHE = "cache"
EVAL_MODELS = "models"
SERVING_LOG = "log.sqlite"
SERVING_LOG_FALLBACK = "log-unwritten.jsonl"
CANARY_STATE = "canary.json"
CANARY_LOCK = ".canary.lock"
SERVER_FILE = "server.json"
SERVED_ADAPTERS = "adapters"
VLLM_TEMPLATE = "vllm-template.jinja"
RUN_ADAPTER = "best"
RUN_CHECKPOINTS = "checkpoints"
RUN_METRICS = "metrics.jsonl"
RUN_LINEAGE = "lineage.json"
WARM_START = "init"
FEDERATED = "federated"
FEDERATED_REPORT = "report.json"
CYCLE_LOCK = ".lock"
TRIGGER_LOG = "triggers.jsonl"
REGISTRY_DB = "mlflow.db"
REGISTRY_ARTIFACTS = "artifacts"
REGISTRY_AUDIT = "registry-audit.jsonl"
REPORT_PAGE = "report.html"
DEMO_DATA = "demo-data"
DEMO_MARKER = ".tuneloop-demo"
LEAKED_AGAIN = "leaked-again.jsonl"
# A versioned folder (the contamination index, the replay buffer): versions/<id>/ each written
# whole and renamed into place, then CURRENT replaced atomically to name the current one.
VERSIONS = "versions"
CURRENT = "CURRENT"
CURRENT_TMP = ".CURRENT.tmp"

NAMES: tuple[str, ...] = (
    CONFIG_NAME, TRAIN, EVAL, INDEX, SERVE, RUNS, CYCLES, ERASURES, TRAIN_STORE, DATASETS,
    REJECTS, REPLAY, PRIVACY_LEDGER, EVAL_STORE, EVAL_REPORTS, EVAL_CACHE, EVAL_MODELS,
    SERVING_LOG, SERVING_LOG_FALLBACK, CANARY_STATE, CANARY_LOCK, SERVER_FILE, SERVED_ADAPTERS,
    VLLM_TEMPLATE, RUN_ADAPTER, RUN_CHECKPOINTS, RUN_METRICS, RUN_LINEAGE, WARM_START, FEDERATED,
    FEDERATED_REPORT, CYCLE_LOCK, TRIGGER_LOG, REGISTRY_DB, REGISTRY_ARTIFACTS, REGISTRY_AUDIT,
    REPORT_PAGE, DEMO_DATA, DEMO_MARKER, LEAKED_AGAIN, VERSIONS, CURRENT, CURRENT_TMP,
)  # fmt: skip
"""Every name above: no other module may spell one (``tests/test_boundaries.py``)."""


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def config_path(self) -> Path:
        """The settings, ``tuneloop.toml``."""
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

    # -- the training side ----------------------------------------------------------------------
    @property
    def train_dir(self) -> Path:
        """The training side's folder."""
        return self.root / TRAIN

    @property
    def train_store_path(self) -> Path:
        """The training store's SQLite file (raw intake, routing table, cursors)."""
        return self.train_dir / TRAIN_STORE

    @property
    def datasets_dir(self) -> Path:
        """Dataset versions, one folder each (laid out by :mod:`tuneloop.datasets`)."""
        return self.train_dir / DATASETS

    @property
    def rejects_dir(self) -> Path:
        """What ingestion dropped, one JSONL file per batch, each row with its reason."""
        return self.train_dir / REJECTS

    @property
    def replay_dir(self) -> Path:
        """The replay buffer, a versioned folder (:class:`tuneloop.train.replay.ReplayBuffer`)."""
        return self.train_dir / REPLAY

    @property
    def privacy_ledger_path(self) -> Path:
        """Every private round's ε and δ, per user (:mod:`tuneloop.train.ledger`)."""
        return self.train_dir / PRIVACY_LEDGER

    # -- the eval side --------------------------------------------------------------------------
    @property
    def eval_dir(self) -> Path:
        """The eval side's folder: only the evaluator reads it."""
        return self.root / EVAL

    @property
    def eval_store_path(self) -> Path:
        """The eval store's SQLite file (append-only, hash-chained)."""
        return self.eval_dir / EVAL_STORE

    @property
    def eval_reports_dir(self) -> Path:
        """The evaluator's reports, one per model and eval index (:meth:`eval_report_path`)."""
        return self.eval_dir / EVAL_REPORTS

    def eval_report_path(self, model: str, index_version: str) -> Path:
        """The report of ``model`` (``base``, ``v3`` …) scored on eval index ``index_version``."""
        return self.eval_reports_dir / f"{model}-{index_version[:12]}.json"

    def latest_eval_report(self, model: str) -> Path | None:
        """The newest report of ``model``, on whichever eval index; None if it was never scored."""
        found = sorted(
            self.eval_reports_dir.glob(f"{model}-*.json"), key=lambda p: p.stat().st_mtime
        )
        return found[-1] if found else None

    @property
    def eval_cache_dir(self) -> Path:
        """The evaluator's answer cache (its file named in :mod:`tuneloop.evalside.evaluator`)."""
        return self.eval_dir / EVAL_CACHE

    def eval_model_dir(self, version: str) -> Path:
        """Registered version ``version``'s adapter, fetched to be scored."""
        return self.eval_dir / EVAL_MODELS / f"v{version}"

    # -- the contamination index ----------------------------------------------------------------
    @property
    def index_dir(self) -> Path:
        """The contamination index, a versioned folder of one-way hashes the training side may
        read (laid out by :mod:`tuneloop.contamination.persist`)."""
        return self.root / INDEX

    def index_version(self) -> str | None:
        """The eval index the training side checks against now; None before any eval item."""
        return current_version(self.index_dir)

    # -- serving --------------------------------------------------------------------------------
    @property
    def serve_dir(self) -> Path:
        """The server's folder: the serving log, the canary's state, fetched adapters."""
        return self.root / SERVE

    @property
    def serving_log_path(self) -> Path:
        """The serving log's SQLite file: every response and its feedback."""
        return self.serve_dir / SERVING_LOG

    @property
    def vllm_template_path(self) -> Path:
        """The chat template ``tuneloop vllm-template`` writes for vLLM's tool calls."""
        return self.serve_dir / VLLM_TEMPLATE

    # -- training runs --------------------------------------------------------------------------
    @property
    def runs_dir(self) -> Path:
        """Training runs, one folder each (:meth:`run_dir`)."""
        return self.root / RUNS

    def run_dir(self, run_id: str) -> Path:
        """A training run's folder: the trainer's output (``best/``, ``checkpoints/``,
        ``metrics.jsonl``) and the run's ``lineage.json``."""
        return self.runs_dir / run_id

    def run_metrics_paths(self) -> list[Path]:
        """Every run's ``metrics.jsonl``, in the order of the runs' ids."""
        return sorted(self.runs_dir.glob(f"*/{RUN_METRICS}"))

    @property
    def warm_start_dir(self) -> Path:
        """Production's adapters, fetched from the registry to start a run from."""
        return self.runs_dir / WARM_START

    def federated_run_dir(self, run_id: str) -> Path:
        """A federated run: the aggregate adapter of each round, and the run's report."""
        return self.runs_dir / FEDERATED / run_id

    def federated_round_dir(self, run_id: str, server_round: int) -> Path:
        """A federated round: its aggregate at the aggregator, its local run at a site."""
        return self.federated_run_dir(run_id) / f"round-{server_round}"

    def federated_report_path(self, run_id: str) -> Path:
        """A federated run's report."""
        return self.federated_run_dir(run_id) / FEDERATED_REPORT

    # -- the loop -------------------------------------------------------------------------------
    @property
    def cycles_dir(self) -> Path:
        """The loop's rounds, one folder each (laid out by :mod:`tuneloop.state.cycle`)."""
        return self.root / CYCLES

    @property
    def cycle_lock_path(self) -> Path:
        """The lock a running cycle holds (one cycle at a time), naming its process."""
        return self.cycles_dir / CYCLE_LOCK

    @property
    def trigger_log_path(self) -> Path:
        """Every evaluation of the triggers, one JSON line each."""
        return self.cycles_dir / TRIGGER_LOG

    @property
    def inbox_dir(self) -> Path:
        """Where a cycle collects new interaction files from (``cycle.inbox``)."""
        return self.root / self.config.cycle.inbox

    # -- erasure, the registry, the report -------------------------------------------------------
    @property
    def erasures_dir(self) -> Path:
        """The erasure receipts (:meth:`erasure_receipt_path`)."""
        return self.root / ERASURES

    def erasure_receipt_path(self, request_id: str) -> Path:
        """What an erasure removed where, and what the check found after it."""
        return self.erasures_dir / f"{request_id}.json"

    @property
    def registry_db_path(self) -> Path:
        """The embedded model registry's SQLite file (MLflow's); absent on a server."""
        return self.root / REGISTRY_DB

    @property
    def registry_artifacts_dir(self) -> Path:
        """The registered adapters' files, on both backends."""
        return self.root / REGISTRY_ARTIFACTS

    @property
    def registry_audit_path(self) -> Path:
        """The registry's audit log: every alias move and canary step, who and why."""
        return self.root / REGISTRY_AUDIT

    def registry_uri(self) -> str:
        """Where the model registry is: :attr:`registry_db_path`, or MLflow's tables on the
        stores' PostgreSQL server (schema ``mlflow``, as the registry role). A folder without
        ``tuneloop.toml`` (a bare registry) gets the file."""
        if self.config_path.is_file() and self._on_server:
            cfg = self.config.storage
            return registry_uri(cfg.postgres, cfg.role_prefix)
        return f"sqlite:///{self.registry_db_path}"

    @property
    def report_page_path(self) -> Path:
        """Where ``tuneloop report`` writes the report page by default."""
        return self.root / REPORT_PAGE

    # -- the demo -------------------------------------------------------------------------------
    @property
    def demo_data_dir(self) -> Path:
        """The demo's generated files (:func:`tuneloop.demo.generate.write`)."""
        return self.root / DEMO_DATA

    @property
    def demo_marker_path(self) -> Path:
        """Says the folder was made by ``tuneloop demo``, which may wipe it to start again."""
        return self.root / DEMO_MARKER

    @property
    def leaked_again_path(self) -> Path:
        """The leak experiment's leaked items, sent through ingestion once more."""
        return self.root / LEAKED_AGAIN

    # -- the stores, on either backend -----------------------------------------------------------
    @property
    def _on_server(self) -> bool:
        return self.config.storage.backend == "postgres"

    def has_registry(self) -> bool:
        """Whether a model registry may hold versions (on a server: its schema is always there)."""
        return self._on_server or self.registry_db_path.is_file()

    def has_serving_log(self) -> bool:
        """Whether a server has logged anything yet (on a server: the schema is always there)."""
        return self._on_server or self.serving_log_path.is_file()

    def store(self, name: Store, role: Role) -> Path | PgTarget:
        """Where ``name`` is, opened by ``role``: the SQLite file, or the store's schema on
        the server as that role (``[storage] backend = "postgres"``)."""
        local = {"train": self.train_store_path, "eval": self.eval_store_path,
                 "serving": self.serving_log_path}[name]  # fmt: skip
        if not self._on_server:
            return local
        cfg = self.config.storage
        return pg_target(cfg.postgres, cfg.role_prefix, name, role, local)


def current_version(folder: Path) -> str | None:
    """A versioned folder's current version (what its ``CURRENT`` names); None before the first."""
    pointer = folder / CURRENT
    return pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else None


def set_current(folder: Path, version: str) -> None:
    """Make ``version`` a versioned folder's current one, atomically (after its folder is whole)."""
    pointer = folder / CURRENT_TMP
    pointer.write_text(version, encoding="utf-8")
    pointer.replace(folder / CURRENT)


def versions_dir(folder: Path) -> Path:
    """A versioned folder's versions, one folder each."""
    return folder / VERSIONS


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
