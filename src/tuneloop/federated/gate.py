"""Each round's adapter is gated like any candidate, before anything is registered.

``tuneloop gate`` judges a registered version; a federated round is judged before registration
so that a refused round leaves no version behind. The candidate is scored by the evaluator role
from its adapter folder on the aggregator's eval store (the same suites, cache and report as
``tuneloop evaluate``); the incumbent (production, else the base model) through
:func:`tuneloop.flows.evaluate.evaluate`; :func:`tuneloop.gate.decide` applies the workspace's
policy. The contamination certificate is the sites' own: each checked its whole dataset version
against the aggregator's eval index (one-way hashes) and reported a count. The certificate names
that index only when every count is zero; any match fails the rule, with the count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneloop.datasets import INDEX_VERSION_KEY
from tuneloop.evalside.report import EvalReport
from tuneloop.evalside.store import EvalStore
from tuneloop.federated.wire import SiteReport
from tuneloop.flows.evaluate import evaluate, evaluate_model
from tuneloop.flows.gate import policy_from
from tuneloop.flows.register import production_version, registry_for
from tuneloop.gate import decide
from tuneloop.model.fetch import base_folder
from tuneloop.workspace import Workspace


@dataclass(frozen=True)
class RoundVerdict:
    """The gate's decision (as ``tuneloop gate`` prints it) and the candidate's report path."""

    decision: dict[str, Any]
    report: Path

    @property
    def passed(self) -> bool:
        return bool(self.decision["decision"] == "pass")


def evaluate_folder(
    ws: Workspace, name: str, adapter: Path, cutoff: str | None
) -> tuple[EvalReport, Path]:
    """Score an unregistered adapter folder the way ``tuneloop evaluate`` scores a version."""
    return evaluate_model(ws, name, base_folder(ws.config.train.base), adapter, cutoff)


def certificate_of(reports: Sequence[SiteReport], checked: str) -> dict[str, Any]:
    """The sites' checks as one certificate. It names the index they checked against only when
    no record matched, so that a match always reaches the re-verification, which counts it."""
    clean = all(r.contaminated == 0 for r in reports)
    return {
        INDEX_VERSION_KEY: checked if clean else f"{checked} (some site records match)",
        "sites": {
            r.site: {"dataset_version": r.dataset_version, "matches": r.contaminated}
            for r in reports
        },
    }


def gate_round(
    ws: Workspace, name: str, adapter: Path, reports: Sequence[SiteReport], checked: str
) -> RoundVerdict:
    """Evaluate the round's adapter and the incumbent on the same items; decide.

    ``checked`` is the eval index version the sites checked their data against.
    """
    production = production_version(registry_for(ws))
    incumbent = production or "base"
    cutoff = max((r.cutoff_window for r in reports if r.cutoff_window), default=None)
    candidate, path = evaluate_folder(ws, name, adapter, cutoff)
    inc_report, _ = evaluate(ws, incumbent)
    policy = policy_from(ws)
    base_report = None
    if policy.forgetting_reference == "base" and incumbent != "base":
        base_report, _ = evaluate(ws, "base")
    with EvalStore(ws.store("eval", "eval")) as store:
        current = store.version()
    matches = sum(r.contaminated for r in reports)
    decision = decide(
        candidate,
        inc_report,
        policy,
        certificate_of(reports, checked),
        current,
        reverify=(lambda: matches) if matches else None,
        base=base_report,
    )
    return RoundVerdict(decision.to_dict(), path)
