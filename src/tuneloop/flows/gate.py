"""``tuneloop gate CANDIDATE``: evaluate candidate and incumbent on the same items, decide.

The incumbent is the production model, or the base model when nothing is in production yet.
The decision, with its reasons, is recorded on the candidate's registry version; ``--promote``
moves ``production`` to the candidate when it passes.
"""

from __future__ import annotations

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


def run_gate(ws: Workspace, candidate: str, promote: bool = False) -> GateRun:
    """Evaluate candidate and incumbent, decide, record; keep the reports for the caller."""
    registry = registry_for(ws)
    cand = registry.resolve(candidate)
    production = production_version(registry)
    incumbent = production if production and production != cand.version else "base"
    cand_report, _ = evaluate(ws, cand.version)
    inc_report, _ = evaluate(ws, incumbent)
    policy = policy_from(ws)
    base_report = None
    if policy.forgetting_reference == "base" and incumbent != "base":
        base_report, _ = evaluate(ws, "base")  # answers cached per item: new items only
    dataset = cand.lineage.dataset_version
    certificate = DatasetStore(ws.datasets_dir).show(dataset).get("contamination_certificate")
    with EvalStore(ws.store("eval", "eval")) as store:
        current = store.version()
    decision: GateDecision = decide(
        cand_report, inc_report, policy, certificate, current,
        reverify=lambda: reverify_dataset(ws, dataset), base=base_report,
    )  # fmt: skip
    out = decision.to_dict()
    registry.set_gate_decision(cand.version, out)
    if promote and out["decision"] == "pass":
        release.promote(registry, cand.version, ws.index_version())
        out["promoted"] = True
    return GateRun(out, cand_report, inc_report)


def gate(ws: Workspace, candidate: str, promote: bool = False) -> dict[str, Any]:
    return run_gate(ws, candidate, promote).decision
