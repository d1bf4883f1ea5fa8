"""The registry: model versions over MLflow, with lineage tags, verified downloads and aliases."""

from __future__ import annotations

import builtins
import contextlib
import copy
import json
import os
import pwd
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.entities.model_registry import ModelVersion as MlflowModelVersion
from mlflow.exceptions import MlflowException

from tuneloop.errors import WorkspaceError
from tuneloop.registry.audit import MAX_TAG_CHARS, AuditLog, JsonlAudit, TagAudit
from tuneloop.registry.lineage import Lineage, ModelVersion
from tuneloop.registry.location import check_location
from tuneloop.registry.locks import (
    flock,
    lock_path_for,
    quiet_mlflow_lock_logs,
    sqlite_path,
    with_retry,
)
from tuneloop.registry.manifest import (
    MANIFEST_TAG,
    SHA_TAG,
    AdapterIntegrityError,
    build_manifest,
    combined_sha256,
    verify_manifest,
)
from tuneloop.registry.release import WAIVER_TAG
from tuneloop.workspace import Workspace

PRODUCTION, PREVIOUS, CANARY = "production", "previous", "canary"
ARTIFACT_DIR = "adapter"


def is_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts "²", which ``int`` then refuses."""
    return text.isascii() and text.isdigit()


MAX_VERSION = 2**63 - 1  # MLflow stores versions as 64-bit integers


class UnknownVersionError(WorkspaceError):
    """No such version or alias: the message lists what there is."""


class ProductionMovedError(WorkspaceError):
    """A move that expected another production version: nothing was changed."""


def _version_str(ref: str | int) -> str:
    text = str(ref).strip().removeprefix("v")
    if not is_number(text) or int(text) > MAX_VERSION:
        raise UnknownVersionError(f"{ref!r} is not a version number; pass e.g. 3")
    return str(int(text))


def _alias_text(aliases: Mapping[str, str]) -> str:
    return "aliases: " + (", ".join(f"{a}={v}" for a, v in sorted(aliases.items())) or "none")


def os_actor() -> str:
    """Who moves aliases from the command line: the OS account (``$USER`` is often unset)."""
    try:
        return f"os:{pwd.getpwuid(os.getuid()).pw_name}"
    except KeyError:
        return f"os:uid-{os.getuid()}"


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
        self.actor = os_actor()  # who the audit log names for moves made through this object
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.lock_path = lock_path_for(tracking_uri, artifact_root)
        self.audit_log: AuditLog = (
            JsonlAudit(audit_path) if audit_path else TagAudit(self.client, name)
        )
        quiet_mlflow_lock_logs()
        self.experiment_id = self._open(artifact_root)

    @classmethod
    def for_workspace(cls, root: Path) -> Registry:
        """The workspace's registry (:meth:`Workspace.registry_uri`: a file in it, or MLflow's
        tables on the stores' PostgreSQL server), its artifacts folder and its audit log."""
        ws = Workspace(root.resolve())
        return cls(
            ws.registry_uri(),
            artifact_root=ws.registry_artifacts_dir,
            audit_path=ws.registry_audit_path,
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
                if artifact_root is not None:
                    check_location(found.artifact_location, artifact_root, self.name)
                return str(found.experiment_id)
        with flock(self.lock_path):
            self._prepare_sqlite()
            experiment_id = self._ensure_experiment(artifact_root)
            if not self._model_exists():
                with_retry(lambda: self.client.create_registered_model(self.name))
        if artifact_root is not None:
            found = with_retry(lambda: self.client.get_experiment(experiment_id))
            check_location(found.artifact_location, artifact_root, self.name)
        return experiment_id

    def _schema_exists(self) -> bool:
        db = sqlite_path(self.tracking_uri)
        if db is None or not db.is_file():
            return False
        query = "SELECT count(*) FROM sqlite_master WHERE name IN (?, ?, ?)"
        names = ("alembic_version", "experiments", "registered_models")
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
            count: int = with_retry(lambda: conn.execute(query, names).fetchone()[0])
        return count == len(names)

    def _prepare_sqlite(self) -> None:
        """WAL lets readers run beside a writer, so fewer operations meet a locked database."""
        db = sqlite_path(self.tracking_uri)
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

    def set_canary_verdict(self, version: str | int, verdict: Mapping[str, Any]) -> None:
        self._set_tag(version, "canary_verdict", json.dumps(verdict, sort_keys=True))

    def set_tainted(self, version: str | int, erasure: Mapping[str, Any]) -> None:
        """Mark a version as trained on data that was since erased (an audit event too)."""
        self._set_tag(version, "tainted", json.dumps(erasure, sort_keys=True))
        self.record_event("tainted", version=self.get(version).version, **erasure)

    def set_waiver(self, version: str | int, waiver: Mapping[str, Any]) -> None:
        """Record a forced release on the version (its reasons, who, why) and in the audit log."""
        self._set_tag(version, WAIVER_TAG, json.dumps(waiver, sort_keys=True))
        self.record_event("release_forced", version=self.get(version).version, **waiver)

    def acting_as(self, actor: str) -> Registry:
        """This registry, with moves audited as ``actor`` (an API key's name, say)."""
        other = copy.copy(self)
        other.actor = actor
        return other

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
            tainted=json.loads(tags["tainted"]) if "tainted" in tags else None,
            waiver=json.loads(tags[WAIVER_TAG]) if WAIVER_TAG in tags else None,
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

    def _unknown(self, ref: str | int) -> UnknownVersionError:
        versions = [str(mv.version) for mv in self._raw_versions()]
        summary = _summary(versions, self._aliases())
        return UnknownVersionError(
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
        if is_number(text.removeprefix("v")):
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
        mv, manifest = self._manifest(version)
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

    def fetch_adapter(self, version: str | int, dest: Path) -> Path:
        """``dest`` holding the version's verified adapter: files already there are re-verified.

        A server keeps each adapter it has served under a content-addressed folder; checking
        those files against the manifest again at every load means a copy changed on disk is
        refused exactly like a tampered download.
        """
        if not dest.is_dir() or not any(dest.iterdir()):
            return self.download(version, dest)
        verify_manifest(dest, self._manifest(version)[1])
        return dest

    def _manifest(self, version: str | int) -> tuple[ModelVersion, dict[str, str]]:
        """The version and its registered manifest, checked against the version's sha256."""
        mv = self.resolve(version)
        raw = with_retry(lambda: self.client.get_model_version(self.name, mv.version))
        manifest: dict[str, str] = json.loads(raw.tags[MANIFEST_TAG])
        if combined_sha256(manifest) != mv.adapter_sha256:
            raise AdapterIntegrityError(
                f"version {mv.version}: manifest tag does not match its sha"
            )
        return mv, manifest

    def aliases(self) -> dict[str, str]:
        """{alias: version} as the registry has them now."""
        return self._aliases()

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
            self.record_event(action, **{"alias": alias, "from": current.get(alias), "to": target})
            current[alias] = target

    def promote(self, version: str | int) -> None:
        """production → version, previous → the old production.

        previous moves first: if the process dies between the two moves, production is
        unchanged and nothing is lost.
        """
        target = self.get(version).version
        with flock(self.lock_path):
            old = self._aliases().get(PRODUCTION)
            if old == target:
                return
            moves = [(PREVIOUS, old)] if old is not None else []
            self._move("promote", [*moves, (PRODUCTION, target)])

    def rollback(self, to: str | int | None = None, expected: str | int | None = None) -> str:
        """Move production back, to ``to`` or else to ``previous``; return the version now in
        production. ``expected`` is the production version the caller saw: if production has
        moved since, nothing changes (:class:`ProductionMovedError`), so a retried rollback
        never undoes the first. ``previous`` is cleared: the version rolled back from is no
        way back, and a second plain rollback finds nothing to roll back to.
        """
        target = None if to is None else self.get(to).version
        with flock(self.lock_path):
            aliases = self._aliases()
            current = aliases.get(PRODUCTION)
            if expected is not None and _version_str(expected) != current:
                now = f"v{current}" if current else "the base model"
                raise ProductionMovedError(
                    f"{self.name}: production is {now}, not v{_version_str(expected)}: it moved "
                    "since; nothing was changed (look again with `tuneloop registry list`)"
                )
            if target is None:
                if PREVIOUS not in aliases:
                    raise ProductionMovedError(
                        f"{self.name}: nothing to roll back to (no '{PREVIOUS}' alias; "
                        f"{_alias_text(aliases)}); name a version: rollback --to V"
                    )
                target = aliases[PREVIOUS]
            if target != current:
                self._move("rollback", [(PRODUCTION, target), (PREVIOUS, None)])
            return target

    def retire_production(self, target: str | None, reason: str) -> None:
        """Move production to ``target`` (None: no version, the base model serves), with the
        reason in the audit log; previous is cleared, as a rollback to it would undo this."""
        with flock(self.lock_path):
            self._move("retire", [(PREVIOUS, None), (PRODUCTION, target)])
        self.record_event("retire_production", to=target, reason=reason)

    def set_canary(self, version: str | int) -> None:
        target = self.get(version).version
        with flock(self.lock_path):
            self._move("set_canary", [(CANARY, target)])

    def clear_canary(self) -> None:
        with flock(self.lock_path):
            self._move("clear_canary", [(CANARY, None)])

    def record_event(self, action: str, **details: Any) -> None:
        """An audit event: an alias move, a canary step or verdict, a refused adapter."""
        self.audit_log.append({
            "time": datetime.now(UTC).isoformat(), "action": action, "user": self.actor, **details,
        })  # fmt: skip

    def audit(self) -> builtins.list[dict[str, Any]]:
        """Every event, oldest first: time, action, user, and the event's details (an alias
        move's alias, from and to)."""
        return self.audit_log.read()
