"""Registering a gated federated round, with per-site lineage: ids and counts, never records.

The version's ``dataset_version`` names the set of site versions (``federated:<hash>``); the
hyperparameters carry, per site, its dataset version, its record counts and example weight, and
the run's aggregation, rounds and update privacy. That is enough to find every version a site's
dataset went into (erasure, audit) without the aggregator ever holding the site's data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tuneloop.federated.wire import RoundPlan, SiteReport
from tuneloop.flows.register import production_version, registry_for
from tuneloop.flows.train import code_version, library_versions
from tuneloop.model.base import BaseModelInfo
from tuneloop.registry import Lineage, ModelVersion
from tuneloop.workspace import Workspace


def federated_dataset(reports: Sequence[SiteReport]) -> str:
    """One id for the set of site dataset versions (order-free)."""
    body = "\n".join(sorted(f"{r.site}={r.dataset_version}" for r in reports))
    return "federated:" + hashlib.sha256(body.encode()).hexdigest()[:16]


def site_lineage(reports: Sequence[SiteReport], weights: Sequence[float]) -> list[dict[str, Any]]:
    return [
        {
            "site": r.site,
            "dataset_version": r.dataset_version,
            "train_records": r.train_records,
            "validation_records": r.validation_records,
            "examples": int(w),
            "contamination_matches": r.contaminated,
        }
        for r, w in zip(reports, weights, strict=True)
    ]


def round_lineage(
    plan: RoundPlan,
    base: BaseModelInfo,
    base_ref: str,
    server_round: int,
    rounds: int,
    sites: list[dict[str, Any]],
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """The hyperparameters tag: the local settings plus the federation's own."""
    return {
        **plan.settings.to_dict(),
        "libraries": library_versions(),
        "run_id": plan.run_id,
        "init_from": None,
        "federated": {
            "round": server_round,
            "rounds": rounds,
            "aggregation": plan.aggregation,
            "update_privacy": plan.privacy.to_dict(),
            "sites": sites,
            **extra,
            "base_ref": base_ref,
            "base_architecture": base.architecture,
        },
    }


def register_round(
    ws: Workspace,
    adapter: Path,
    base: BaseModelInfo,
    base_ref: str,
    reports: Sequence[SiteReport],
    hyperparameters: dict[str, Any],
    decision: Mapping[str, Any],
    report: Path,
    metrics: Mapping[str, float],
) -> ModelVersion:
    """A candidate version whose parent is production, with the gate's decision and report."""
    registry = registry_for(ws)
    lineage = Lineage(
        base_ref=base_ref,
        base_revision=base.revision or "",
        base_sha256=base.weights_sha256,
        dataset_version=federated_dataset(reports),
        replay_version="",
        hyperparameters=hyperparameters,
        code_version=code_version(),
        parent_version=production_version(registry),
    )
    version = registry.register(adapter, lineage, metrics)
    registry.set_gate_decision(version.version, decision)
    registry.attach_eval_report(version.version, report)
    return version
