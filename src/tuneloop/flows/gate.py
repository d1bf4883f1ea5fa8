"""``tuneloop gate CANDIDATE``: evaluate candidate and incumbent on the same items, decide.

The incumbent is the production model, or the base model when nothing is in production yet.
The decision, with its reasons, is recorded on the candidate's registry version; ``--promote``
moves ``production`` to the candidate when it passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tuneloop.contamination.check import Checker, strongest
from tuneloop.datasets import DatasetStore
from tuneloop.evalside.intake import load_or_rebuild
from tuneloop.evalside.report import EvalReport
from tuneloop.evalside.store import EvalStore
from tuneloop.flows.evaluate import evaluate
from tuneloop.flows.register import production_version, registry_for
from tuneloop.gate import GateDecision, GatePolicy, decide
from tuneloop.registry import release
from tuneloop.workspace import Workspace


def policy_from(ws: Workspace) -> GatePolicy:
    """The gate policy of the workspace: its [gate] section."""
    return ws.config.gate


def reverify_dataset(ws: Workspace, dataset: str) -> int:
    """How many of the dataset's records match the *current* eval set."""
    with EvalStore(ws.store("eval", "eval")) as store:
        index = load_or_rebuild(ws, store)
    records = DatasetStore(ws.datasets_dir).load(dataset)
    found = Checker(index).check_records(records)
    return sum(1 for matches in found if strongest(matches) is not None)


@dataclass(frozen=True)
class GateRun:
    """The decision (as recorded on the registry version) and the two reports it came from."""

    decision: dict[str, Any]
    candidate: EvalReport
    incumbent: EvalReport


def judge(
    ws: Workspace,
    candidate: EvalReport,
    certificate: dict[str, Any] | None,
    reverify: Callable[[], int] | None,
    registered_as: str | None = None,
) -> GateRun:
    """The gate on a scored candidate, registered or not: the incumbent (production, else the
    base model) scored on the same items, the base too when forgetting is measured against it,
    the workspace's policy applied. ``tuneloop gate``, the cycle's gate stage and a federated
    round (whose adapter is judged before it is registered) all decide here.

    ``registered_as``: the candidate's own version, which is never its own incumbent.
    """
    production = production_version(registry_for(ws))
    incumbent = production if production and production != registered_as else "base"
    inc_report, _ = evaluate(ws, incumbent)
    policy = policy_from(ws)
    base_report = None
    if policy.forgetting_reference == "base" and incumbent != "base":
        base_report, _ = evaluate(ws, "base")  # answers cached per item: new items only
    with EvalStore(ws.store("eval", "eval")) as store:
        current = store.version()
    decision: GateDecision = decide(
        candidate, inc_report, policy, certificate, current, reverify=reverify, base=base_report
    )
    return GateRun(decision.to_dict(), candidate, inc_report)


def run_gate(ws: Workspace, candidate: str, promote: bool = False) -> GateRun:
    """Evaluate candidate and incumbent, decide, record; keep the reports for the caller."""
    registry = registry_for(ws)
    cand = registry.resolve(candidate)
    cand_report, _ = evaluate(ws, cand.version)
    dataset = cand.lineage.dataset_version
    certificate = DatasetStore(ws.datasets_dir).show(dataset).get("contamination_certificate")
    run = judge(ws, cand_report, certificate, lambda: reverify_dataset(ws, dataset), cand.version)
    out = run.decision
    registry.set_gate_decision(cand.version, out)
    if promote and out["decision"] == "pass":
        release.promote(registry, cand.version, ws.index_version())
        out["promoted"] = True
    return run


def gate(ws: Workspace, candidate: str, promote: bool = False) -> dict[str, Any]:
    return run_gate(ws, candidate, promote).decision
