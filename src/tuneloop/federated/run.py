"""``tuneloop federated``: several site workspaces train one LoRA adapter together.

The sites' data never leaves their workspaces: each round every site trains the global adapter
a few steps on its own dataset version and sends back only the change of the adapter tensors it
trained (see :mod:`tuneloop.federated`). Flower's simulation engine runs the sites as nodes on
this machine (Ray). Every round is gated on the aggregator workspace's eval set, and a round
that passes is registered there as a candidate with per-site lineage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tuneloop.datasets import DatasetStore
from tuneloop.errors import WorkspaceError, needs_extra
from tuneloop.evalside.intake import load_or_rebuild
from tuneloop.evalside.store import EvalStore
from tuneloop.federated.client import client_app
from tuneloop.federated.factors import aggregation_of
from tuneloop.federated.privacy import UpdatePrivacy, site_epsilon
from tuneloop.federated.server import Aggregator, fresh_adapter, server_app
from tuneloop.federated.site import SiteSpec
from tuneloop.federated.strategy import LoraFedAvg, RoundRecord
from tuneloop.federated.wire import RoundPlan
from tuneloop.flows.train import settings_from
from tuneloop.model.base import load_base
from tuneloop.model.fetch import base_folder
from tuneloop.train.loop import TrainSettings
from tuneloop.workspace import Workspace, find_workspace


@dataclass(frozen=True)
class FederatedReport:
    run_id: str
    aggregation: str
    sites: list[dict[str, str]]
    rounds: list[dict[str, Any]]
    registered: list[str]
    site_epsilon: float | None
    update_privacy: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def site_workspaces(roots: Sequence[Path], aggregator: Workspace) -> list[Workspace]:
    """Each site's workspace, every one distinct from the others and from the aggregator."""
    if len(roots) < 2:
        raise WorkspaceError(
            "federated training needs at least two sites; pass --site DIR for each"
        )
    found: list[Workspace] = []
    seen: dict[Path, str] = {aggregator.root: "the aggregator"}
    for root in roots:
        ws = find_workspace(root)
        if ws.root in seen:
            raise WorkspaceError(
                f"{root}: already given as {seen[ws.root]}; each site needs its own workspace"
            )
        seen[ws.root] = f"site {ws.root.name}"
        found.append(ws)
    if len({ws.root.name for ws in found}) != len(found):
        raise WorkspaceError("two site folders have the same name; give each site its own name")
    return found


def site_specs(roots: Sequence[Path], aggregator: Workspace) -> list[SiteSpec]:
    """Each site's latest dataset version, which must hold training records."""
    specs = []
    for ws in site_workspaces(roots, aggregator):
        store = DatasetStore(ws.datasets_dir)
        version = store.latest()
        if version is None:
            raise WorkspaceError(
                f"site {ws.root}: no dataset version yet; run `tuneloop curate -w {ws.root}`"
            )
        if store.show(version)["counts"]["train"] == 0:
            raise WorkspaceError(
                f"site {ws.root}: dataset {version} has no training records; ingest and curate"
            )
        specs.append(SiteSpec(ws.root.name, str(ws.root), version))
    return specs


def run_id_for(
    specs: Sequence[SiteSpec],
    base_sha: str,
    settings: TrainSettings,
    rounds: int,
    aggregation: str,
    privacy: UpdatePrivacy,
) -> str:
    body = json.dumps(
        [
            [(s.name, s.dataset_version) for s in specs],
            base_sha,
            settings.to_dict(),
            rounds,
            aggregation,
            privacy.to_dict(),
        ],
        sort_keys=True,
    )
    return "fed-" + hashlib.sha256(body.encode()).hexdigest()[:12]


def eval_index(ws: Workspace) -> str:
    """Make sure the aggregator's current eval index is on disk (the sites check against it)."""
    with EvalStore(ws.store("eval", "eval")) as store:
        load_or_rebuild(ws, store)
        return store.version()


def _simulate(server: Any, client: Any, sites: int) -> None:
    """Flower's simulation engine (Ray): one node per site, one CPU each, quiet logs."""
    with needs_extra("federated", "Flower's simulation engine"):
        from flwr.simulation import run_simulation  # noqa: PLC0415 - Ray: [federated] extra

    logging.getLogger("flwr").setLevel(logging.WARNING)
    cpus = max(1, min(sites, os.cpu_count() or 1))
    backend = {
        "client_resources": {"num_cpus": 1},
        "init_args": {"num_cpus": cpus, "logging_level": logging.ERROR, "log_to_driver": False},
    }
    run_simulation(server, client, num_supernodes=sites, backend_config=backend)  # type: ignore[arg-type]


def federated(
    aggregator: Workspace,
    site_roots: Sequence[Path],
    rounds: int,
    local_steps: int,
    aggregation: str = "ffa",
    privacy: UpdatePrivacy | None = None,
    observe: Callable[[RoundRecord], None] | None = None,
) -> FederatedReport:
    """Run ``rounds`` federated rounds; gate each; register the ones that pass."""
    if rounds < 1 or local_steps < 1:
        raise WorkspaceError("--rounds and --local-steps must be at least 1")
    privacy = privacy or UpdatePrivacy()
    mode = aggregation_of(aggregation)
    specs = site_specs(site_roots, aggregator)
    cfg = aggregator.config.train
    steps = settings_from(cfg, local_steps).model_copy(
        update={"privacy": None, "eval_every": local_steps, "save_every": local_steps}
    )
    model, _, info = load_base(base_folder(cfg.base), cfg.revision)
    model, initial = fresh_adapter(model, steps.lora, steps.seed)
    run_id = run_id_for(specs, info.weights_sha256, steps, rounds, aggregation, privacy)
    plan = RoundPlan(
        run_id,
        steps,
        mode,
        privacy,
        info.weights_sha256,
        str(aggregator.index_dir),
        eval_index(aggregator),
    )
    eps = site_epsilon(privacy, rounds)
    agg = Aggregator(
        aggregator, plan, model, info, cfg.base, rounds, {"site_epsilon": eps}, observe
    )
    strategy = LoraFedAvg(len(specs), agg.on_round)
    errors: list[BaseException] = []
    _simulate(server_app(strategy, initial, plan, rounds, errors), client_app(specs), len(specs))
    if errors:
        raise errors[0]
    if len(agg.outcomes) != rounds:
        raise WorkspaceError(
            f"the simulation stopped after {len(agg.outcomes)} of {rounds} rounds; "
            "see the log above"
        )
    report = FederatedReport(
        run_id,
        aggregation,
        [{"site": s.name, "dataset_version": s.dataset_version} for s in specs],
        [o.to_dict() for o in agg.outcomes],
        [o.version for o in agg.outcomes if o.version],
        eps,
        privacy.to_dict(),
    )
    path = aggregator.federated_report_path(run_id)
    path.write_text(json.dumps(report.to_dict(), indent=1, default=str))
    return report
