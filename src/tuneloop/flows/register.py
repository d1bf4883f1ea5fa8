"""Registering a finished training run as a candidate model version, with its lineage."""

from __future__ import annotations

import json
from pathlib import Path

from tuneloop.errors import WorkspaceError
from tuneloop.registry import Lineage, ModelVersion, Registry
from tuneloop.registry.manifest import build_manifest, combined_sha256
from tuneloop.workspace import RUN_ADAPTER, RUN_LINEAGE, Workspace


def registry_for(ws: Workspace) -> Registry:
    return Registry.for_workspace(ws.root)


def production_version(registry: Registry) -> str | None:
    try:
        return registry.resolve("production").version
    except WorkspaceError:
        return None


def register_run(
    ws: Workspace, run_dir: Path, metrics: dict[str, float] | None = None
) -> ModelVersion:
    """Register ``run_dir/best`` with the lineage the run wrote; its parent is production.

    The same run with the same adapter is registered once: a second call returns that version.
    """
    raw = json.loads((run_dir / RUN_LINEAGE).read_text(encoding="utf-8"))
    registry = registry_for(ws)
    lineage = Lineage(
        base_ref=raw["base"]["ref"],
        base_revision=raw["base"].get("revision") or "",
        base_sha256=raw["base"]["weights_sha256"],
        dataset_version=raw["dataset_version"],
        replay_version=raw.get("replay_version") or "",
        hyperparameters={
            **raw["hyperparameters"],
            "libraries": raw["libraries"],
            "run_id": raw["run_id"],
            "init_from": raw.get("init_from"),
            **({"privacy": raw["privacy"]} if raw.get("privacy") else {}),
        },
        code_version=raw["code_version"],
        parent_version=production_version(registry),
    )
    adapter = run_dir / RUN_ADAPTER
    adapter_sha = combined_sha256(build_manifest(adapter))
    for known in registry.list():  # registering a run again (a rerun after a crash) is a no-op
        if known.lineage.hyperparameters.get("run_id") == raw["run_id"] and (
            known.adapter_sha256 == adapter_sha
        ):
            return known
    return registry.register(adapter, lineage, metrics)
