"""Each round's adapter is gated like any candidate, before anything is registered.

``tuneloop gate`` judges a registered version; a federated round is judged before registration
so that a refused round leaves no version behind. The candidate is scored by the evaluator role
from its adapter folder on the aggregator's eval store (the same suites, cache and report as
``tuneloop evaluate``); the rest is the cycle's gate: :func:`tuneloop.flows.gate.judge` scores
the incumbent and applies the workspace's policy, and the round's verdict is the gate stage's
typed report (:func:`tuneloop.cycle.stages.gate.judged`).

The contamination certificate is the sites' own: each checked its whole dataset version against
the aggregator's eval index (one-way hashes) and reported a count. The certificate names that
index only when every count is zero; any match fails the rule, with the count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneloop.cycle.stages import gate
from tuneloop.datasets import INDEX_VERSION_KEY
from tuneloop.evalside.report import EvalReport
from tuneloop.federated.wire import SiteReport
from tuneloop.flows.evaluate import evaluate_model
from tuneloop.flows.gate import judge
from tuneloop.model.fetch import base_folder
from tuneloop.workspace import Workspace


@dataclass(frozen=True)
class RoundVerdict:
    """The gate's decision (as ``tuneloop gate`` records it), the gate stage's report on it and
    the candidate's eval report path."""

    decision: dict[str, Any]
    gate: gate.Report
    report: Path

    @property
    def passed(self) -> bool:
        return self.gate.decision == "pass"


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
    cutoff = max((r.cutoff_window for r in reports if r.cutoff_window), default=None)
    candidate, path = evaluate_folder(ws, name, adapter, cutoff)
    matches = sum(r.contaminated for r in reports)
    reverify = (lambda: matches) if matches else None
    decision = judge(ws, candidate, certificate_of(reports, checked), reverify).decision
    return RoundVerdict(decision, gate.judged(decision, name), path)
