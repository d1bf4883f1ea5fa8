"""Model versions, their lineage, and the aliases that serving follows, over MLflow's registry.

Why MLflow: it is the registry teams already run (a tracking server in production, one SQLite
file in the embedded default), so tuneloop adds only what it needs on top:

* lineage as version tags, so any served adapter can be traced to its base, data and code;
* a sha256 manifest kept in the database, apart from the artifact store, so an adapter whose
  files were changed after registration is refused at download instead of served;
* aliases (``production``, ``previous``, ``canary``) moved under a file lock and written to an
  audit log, so a promote racing a rollback cannot lose the way back;
* retries with jittered backoff on "database is locked", because SQLite (and MLflow's SQLAlchemy
  store over it) turns concurrent writers into errors rather than waits in some cases.

Nothing here loads an adapter: files are only copied and hashed, and pickle formats are refused.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

# MLflow narrates schema creation at INFO on stderr; read at its import, so set it first.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.entities.model_registry import ModelVersion as MlflowModelVersion
from mlflow.exceptions import MlflowException

from tuneloop.errors import TuneloopError, WorkspaceError

PRODUCTION, PREVIOUS, CANARY = "production", "previous", "canary"
ARTIFACT_DIR = "adapter"
# Adapters are safetensors plus small text files (PEFT writes README.md; tokenizers add .jinja).
# Anything else, above all pickle (.bin, .pt, .pkl), is refused at registration.
ALLOWED_SUFFIXES = frozenset({".safetensors", ".json", ".txt", ".md", ".jinja"})
MANIFEST_TAG, SHA_TAG = "adapter_manifest", "adapter_sha256"
AUDIT_TAG_PREFIX = "tuneloop.audit."
MAX_TAG_CHARS = 100_000  # MLflow's limit on a model version tag value
_LOCKED_MARKERS = ("database is locked", "database is busy")

T = TypeVar("T")
log = logging.getLogger(__name__)


class AdapterIntegrityError(TuneloopError):
    """Downloaded adapter files do not match the sha256 manifest recorded at registration."""


@dataclass(frozen=True)
class Lineage:
    """Everything that produced a model version, enough to rebuild, compare or erase it."""

    base_ref: str
    base_revision: str
    base_sha256: str
    dataset_version: str
    replay_version: str
    hyperparameters: dict[str, Any]
    code_version: str
    eval_report: str | None = None
    gate_decision: str | None = None
    parent_version: str | None = None

    def to_tags(self) -> dict[str, str]:
        tags = {k: v for k, v in asdict(self).items() if isinstance(v, str)}
        tags["hyperparameters"] = json.dumps(self.hyperparameters, sort_keys=True)
        return tags

    @classmethod
    def from_tags(cls, tags: Mapping[str, str], where: str) -> Lineage:
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in tags and f.default is MISSING:
                raise WorkspaceError(f"{where}: tag {f.name!r} missing; not registered by tuneloop")
            values[f.name] = tags.get(f.name)
        values["hyperparameters"] = json.loads(values["hyperparameters"])
        return cls(**values)


@dataclass(frozen=True)
class ModelVersion:
    version: str
    lineage: Lineage
    adapter_sha256: str
    aliases: list[str]
    created_at: datetime
    run_id: str
    source: str


# --- content hashes ---------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_manifest(folder: Path) -> dict[str, str]:
    """{relative posix path: sha256} for every file; refuses links and unexpected file types."""
    if not folder.is_dir():
        raise WorkspaceError(f"{folder}: adapter folder not found; pass the folder training wrote")
    manifest: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            raise WorkspaceError(f"{path}: symlinks are not registered; copy the file in")
        if path.is_dir():
            continue
        if path.suffix not in ALLOWED_SUFFIXES:
            raise WorkspaceError(
                f"{path}: {path.suffix or 'no suffix'} is not an adapter file; "
                f"only {', '.join(sorted(ALLOWED_SUFFIXES))} are registered (never pickle)"
            )
        manifest[rel] = file_sha256(path)
    if not manifest:
        raise WorkspaceError(f"{folder}: adapter folder is empty")
    return manifest


def combined_sha256(manifest: Mapping[str, str]) -> str:
    """One hash for the whole adapter: sha256 over sorted "path NUL sha256 LF" lines."""
    lines = "".join(f"{rel}\0{sha}\n" for rel, sha in sorted(manifest.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def verify_manifest(folder: Path, manifest: Mapping[str, str]) -> None:
    """Raise AdapterIntegrityError naming the first missing, extra or changed file."""
    for rel, expected in sorted(manifest.items()):
        path = folder / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise AdapterIntegrityError(f"{rel}: manifest path escapes the adapter folder")
        if not path.is_file() or path.is_symlink():
            raise AdapterIntegrityError(f"{rel}: missing from the downloaded adapter (tampered?)")
        if file_sha256(path) != expected:
            raise AdapterIntegrityError(
                f"{rel}: sha256 differs from the registered manifest; the adapter was "
                "tampered with or corrupted, do not serve it"
            )
    extra = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if not p.is_dir() and p.relative_to(folder).as_posix() not in manifest
    )
    if extra:
        raise AdapterIntegrityError(f"{extra[0]}: file not in the registered manifest (tampered?)")


# --- retries and locks ------------------------------------------------------------------------


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
def _flock(path: Path) -> Iterator[None]:
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


def _quiet_mlflow_lock_logs() -> None:
    # MLflow narrates schema creation at INFO on stderr; the CLI promises one-line errors.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logger = logging.getLogger("mlflow.store.db.utils")
    if not any(isinstance(f, _QuietLockedErrors) for f in logger.filters):
        logger.addFilter(_QuietLockedErrors())


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def _lock_path(uri: str, artifact_root: Path | None) -> Path:
    """Beside the SQLite file; else beside local artifacts; else in the temp folder.

    The lock only orders writers on one host: against a shared tracking server, run alias
    moves from one place (the gate job).
    """
    db = _sqlite_path(uri)
    if db is not None:
        return db.with_name(db.name + ".lock")
    if artifact_root is not None:
        return artifact_root / ".registry.lock"
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"tuneloop-registry-{digest}.lock"


# --- audit ------------------------------------------------------------------------------------


class AuditLog(Protocol):
    def append(self, event: dict[str, Any]) -> None: ...

    def read(self) -> list[dict[str, Any]]: ...


class JsonlAudit:
    """One JSON line per alias move in a local file, fsynced: the embedded default."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, event: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(event, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


class TagAudit:
    """Audit events as numbered registered-model tags, for registries with no shared disk."""

    def __init__(self, client: MlflowClient, name: str) -> None:
        self.client, self.name = client, name

    def _tags(self) -> dict[str, str]:
        tags = with_retry(lambda: self.client.get_registered_model(self.name)).tags
        return {k: v for k, v in tags.items() if k.startswith(AUDIT_TAG_PREFIX)}

    def append(self, event: dict[str, Any]) -> None:
        key = f"{AUDIT_TAG_PREFIX}{len(self._tags()) + 1:08d}"
        value = json.dumps(event, sort_keys=True)
        with_retry(lambda: self.client.set_registered_model_tag(self.name, key, value))

    def read(self) -> list[dict[str, Any]]:
        return [json.loads(v) for _, v in sorted(self._tags().items())]


# --- the registry -----------------------------------------------------------------------------


def _version_str(ref: str | int) -> str:
    text = str(ref).strip().removeprefix("v")
    if not text.isdigit():
        raise WorkspaceError(f"{ref!r} is not a version number; pass e.g. 3")
    return str(int(text))


def _alias_text(aliases: Mapping[str, str]) -> str:
    return "aliases: " + (", ".join(f"{a}={v}" for a, v in sorted(aliases.items())) or "none")


def _summary(versions: builtins.list[str], aliases: Mapping[str, str]) -> str:
    shown = versions if len(versions) <= 8 else [*versions[:3], "…", *versions[-3:]]
    return f"versions: {', '.join(shown) or 'none'}; {_alias_text(aliases)}"


class Registry:
    """tuneloop's view of one MLflow registered model (one line of adapters for one base)."""

    def __init__(
        self,
        tracking_uri: str,
        artifact_root: Path | None = None,
        name: str = "tuneloop",
        audit_path: Path | None = None,
    ) -> None:
        self.name = name
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.lock_path = _lock_path(tracking_uri, artifact_root)
        self.audit_log: AuditLog = (
            JsonlAudit(audit_path) if audit_path else TagAudit(self.client, name)
        )
        _quiet_mlflow_lock_logs()
        self.experiment_id = self._open(artifact_root)

    @classmethod
    def for_workspace(cls, root: Path) -> Registry:
        root = root.resolve()
        return cls(
            f"sqlite:///{root}/mlflow.db",
            artifact_root=root / "artifacts",
            audit_path=root / "registry-audit.jsonl",
        )

    def _open(self, artifact_root: Path | None) -> str:
        """The experiment id, creating schema, experiment and model on first use.

        Creation must not race between processes (alembic migrations are not safe to run
        twice at once), so it happens under the lock; opening an existing registry needs none,
        which keeps twenty processes from queueing behind each other's startup.
        """
        if self._schema_exists():
            found = with_retry(lambda: self.client.get_experiment_by_name(self.name))
            if found is not None and self._model_exists():
                return str(found.experiment_id)
        with _flock(self.lock_path):
            self._prepare_sqlite()
            experiment_id = self._ensure_experiment(artifact_root)
            if not self._model_exists():
                with_retry(lambda: self.client.create_registered_model(self.name))
            return experiment_id

    def _schema_exists(self) -> bool:
        db = _sqlite_path(self.tracking_uri)
        if db is None or not db.is_file():
            return False
        query = "SELECT count(*) FROM sqlite_master WHERE name IN (?, ?, ?)"
        names = ("alembic_version", "experiments", "registered_models")
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
            count: int = with_retry(lambda: conn.execute(query, names).fetchone()[0])
        return count == len(names)

    def _prepare_sqlite(self) -> None:
        """WAL lets readers run beside a writer, so fewer operations meet a locked database."""
        db = _sqlite_path(self.tracking_uri)
        if db is None:
            return
        db.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
            with_retry(lambda: conn.execute("PRAGMA journal_mode=WAL"))

    def _ensure_experiment(self, artifact_root: Path | None) -> str:
        found = with_retry(lambda: self.client.get_experiment_by_name(self.name))
        if found is not None:
            return str(found.experiment_id)
        location = artifact_root.resolve().as_uri() if artifact_root else None
        return with_retry(lambda: self.client.create_experiment(self.name, location))

    def _model_exists(self) -> bool:
        try:
            with_retry(lambda: self.client.get_registered_model(self.name))
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            return False
        return True

    # --- registering ---

    def register(
        self, adapter_dir: Path, lineage: Lineage, metrics: Mapping[str, float] | None = None
    ) -> ModelVersion:
        """Upload an adapter as a run's artifacts and make it the next version of this model.

        The manifest is hashed before upload and kept in the database, so a file that changes
        during or after upload is caught by download(), never served.
        """
        manifest = build_manifest(adapter_dir)
        adapter_sha = combined_sha256(manifest)
        integrity = {MANIFEST_TAG: json.dumps(manifest, sort_keys=True), SHA_TAG: adapter_sha}
        run_tags = {f"tuneloop.{k}": v for k, v in lineage.to_tags().items()}
        run = with_retry(
            lambda: self.client.create_run(
                self.experiment_id, tags=run_tags, run_name=f"adapter-{adapter_sha[:12]}"
            )
        )
        run_id = run.info.run_id
        try:
            self._log_run(run_id, lineage, metrics or {}, integrity)
            with_retry(lambda: self.client.log_artifacts(run_id, str(adapter_dir), ARTIFACT_DIR))
            source = f"{run.info.artifact_uri}/{ARTIFACT_DIR}"
            tags = {**lineage.to_tags(), **integrity}
            created = with_retry(
                lambda: self.client.create_model_version(
                    self.name, source, run_id=run_id, tags=tags, await_creation_for=0
                )
            )
        except BaseException:
            with contextlib.suppress(Exception):
                with_retry(lambda: self.client.set_terminated(run_id, "FAILED"))
            raise
        with_retry(lambda: self.client.set_terminated(run_id, "FINISHED"))
        return self._convert(created, {})

    def _log_run(
        self,
        run_id: str,
        lineage: Lineage,
        metrics: Mapping[str, float],
        integrity: Mapping[str, str],
    ) -> None:
        now = int(time.time() * 1000)
        params = [
            Param(k, v if isinstance(v, str) else json.dumps(v))
            for k, v in sorted(lineage.hyperparameters.items())
        ]
        batch_metrics = [Metric(k, float(v), now, 0) for k, v in sorted(metrics.items())]
        tags = [RunTag(f"tuneloop.{k}", v) for k, v in integrity.items()]
        for start in range(0, max(len(params), 1), 100):  # MLflow takes 100 params per batch
            chunk = params[start : start + 100]
            extra = (batch_metrics, tags) if start == 0 else ([], [])
            with_retry(partial(self.client.log_batch, run_id, extra[0], chunk, extra[1]))

    def set_gate_decision(self, version: str | int, decision: Mapping[str, Any]) -> None:
        self._set_tag(version, "gate_decision", json.dumps(decision, sort_keys=True))

    def attach_eval_report(self, version: str | int, report: Path | Mapping[str, Any]) -> None:
        """A path is stored as given (resolved); a dict is stored inline as JSON."""
        if isinstance(report, Path):
            value = str(report.resolve())
        else:
            value = json.dumps(report, sort_keys=True)
        self._set_tag(version, "eval_report", value)

    def _set_tag(self, version: str | int, key: str, value: str) -> None:
        if len(value) > MAX_TAG_CHARS:
            raise WorkspaceError(
                f"{key} for version {version} is {len(value)} characters, over MLflow's "
                f"{MAX_TAG_CHARS}; write it to a file and attach the path instead"
            )
        ver = self.get(version).version
        with_retry(lambda: self.client.set_model_version_tag(self.name, ver, key, value))

    # --- reading ---

    def _aliases(self) -> dict[str, str]:
        model = with_retry(lambda: self.client.get_registered_model(self.name))
        return {alias: str(ver) for alias, ver in model.aliases.items()}

    def _convert(self, mv: MlflowModelVersion, aliases: Mapping[str, str]) -> ModelVersion:
        version = str(mv.version)
        tags: dict[str, str] = dict(mv.tags)
        return ModelVersion(
            version=version,
            lineage=Lineage.from_tags(tags, f"{self.name} version {version}"),
            adapter_sha256=tags.get(SHA_TAG, ""),
            aliases=sorted({*mv.aliases, *(a for a, v in aliases.items() if v == version)}),
            created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC),
            run_id=str(mv.run_id),
            source=str(mv.source),
        )

    def _raw_versions(self) -> builtins.list[MlflowModelVersion]:
        found: builtins.list[MlflowModelVersion] = []
        token: str | None = None
        while True:
            search = partial(self.client.search_model_versions, f"name='{self.name}'")
            page = with_retry(partial(search, max_results=1000, page_token=token))
            found.extend(page)
            token = page.token
            if not token:
                return sorted(found, key=lambda mv: int(mv.version))

    def list(self) -> builtins.list[ModelVersion]:
        """Every version, oldest first (newest last)."""
        aliases = self._aliases()
        return [self._convert(mv, aliases) for mv in self._raw_versions()]

    def _unknown(self, ref: str | int) -> WorkspaceError:
        versions = [str(mv.version) for mv in self._raw_versions()]
        summary = _summary(versions, self._aliases())
        return WorkspaceError(
            f"unknown model version or alias {str(ref)!r} in {self.name}; {summary}"
        )

    def get(self, version: str | int) -> ModelVersion:
        ver = _version_str(version)
        try:
            mv = with_retry(lambda: self.client.get_model_version(self.name, ver))
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise self._unknown(version) from None
        return self._convert(mv, {})

    def resolve(self, ref: str | int) -> ModelVersion:
        """A version number ("3", "v3", 3) or an alias ("production", "canary", "previous")."""
        text = str(ref).strip()
        if text.removeprefix("v").isdigit():
            return self.get(text)
        aliases = self._aliases()
        if text not in aliases:
            raise self._unknown(ref)
        return self.get(aliases[text])

    def lineage(self, version: str | int) -> builtins.list[ModelVersion]:
        """The version, its parent, the parent's parent… back to the first (no parent)."""
        chain = [self.resolve(version)]
        while (parent := chain[-1].lineage.parent_version) is not None:
            if any(mv.version == _version_str(parent) for mv in chain):
                raise WorkspaceError(f"{self.name}: lineage cycle at version {parent}")
            chain.append(self.get(parent))
        return chain

    def download(self, version: str | int, dest: Path) -> Path:
        """Fetch the adapter into dest and verify every file against the registered manifest.

        Files land in a temporary sibling folder first and move to dest only once verified,
        so a tampered adapter never appears at dest.
        """
        mv = self.resolve(version)
        raw = with_retry(lambda: self.client.get_model_version(self.name, mv.version))
        manifest: dict[str, str] = json.loads(raw.tags[MANIFEST_TAG])
        if combined_sha256(manifest) != mv.adapter_sha256:
            raise AdapterIntegrityError(
                f"version {mv.version}: manifest tag does not match its sha"
            )
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise WorkspaceError(f"{dest}: exists and is not an empty folder; pick a new path")
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            local = with_retry(
                lambda: self.client.download_artifacts(mv.run_id, ARTIFACT_DIR, str(staging))
            )
            verify_manifest(Path(local), manifest)
            if dest.exists():
                dest.rmdir()
            Path(local).replace(dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return dest

    # --- aliases ---

    def _move(self, action: str, moves: builtins.list[tuple[str, str | None]]) -> None:
        """Apply alias moves in order, auditing each; the caller holds the lock."""
        current: dict[str, str | None] = dict(self._aliases())
        for alias, target in moves:
            if current.get(alias) == target:
                continue
            if target is None:
                with_retry(partial(self.client.delete_registered_model_alias, self.name, alias))
            else:
                with_retry(
                    partial(self.client.set_registered_model_alias, self.name, alias, target)
                )
            self.audit_log.append(
                {
                    "time": datetime.now(UTC).isoformat(),
                    "action": action,
                    "alias": alias,
                    "from": current.get(alias),
                    "to": target,
                    "user": os.environ.get("USER", "unknown"),
                }
            )
            current[alias] = target

    def promote(self, version: str | int) -> None:
        """production → version, previous → the old production.

        previous moves first: if the process dies between the two moves, production is
        unchanged and nothing is lost.
        """
        target = self.get(version).version
        with _flock(self.lock_path):
            old = self._aliases().get(PRODUCTION)
            if old == target:
                return
            moves = [(PREVIOUS, old)] if old is not None else []
            self._move("promote", [*moves, (PRODUCTION, target)])

    def rollback(self) -> None:
        """Swap production and previous, so a second rollback undoes the first.

        production moves first: getting a bad version out of serving is the urgent half.
        """
        with _flock(self.lock_path):
            aliases = self._aliases()
            if PREVIOUS not in aliases:
                raise WorkspaceError(
                    f"{self.name}: nothing to roll back to (no '{PREVIOUS}' alias); "
                    f"promote a version first ({_alias_text(aliases)})"
                )
            self._move(
                "rollback", [(PRODUCTION, aliases[PREVIOUS]), (PREVIOUS, aliases.get(PRODUCTION))]
            )

    def set_canary(self, version: str | int) -> None:
        target = self.get(version).version
        with _flock(self.lock_path):
            self._move("set_canary", [(CANARY, target)])

    def clear_canary(self) -> None:
        with _flock(self.lock_path):
            self._move("clear_canary", [(CANARY, None)])

    def audit(self) -> builtins.list[dict[str, Any]]:
        """Every alias move, oldest first: time, action, alias, from, to, user."""
        return self.audit_log.read()
