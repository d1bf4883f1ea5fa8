"""gate: the candidate against production (or the base model) on the same items; a refusal
ends the cycle, an inconclusive decision holds the release."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from tuneloop.cycle.stages import train
from tuneloop.flows.gate import run_gate
from tuneloop.state.cycle import Cycle, StageReport
from tuneloop.workspace import Workspace

NAME = "gate"


class Report(StageReport):
    decision: str  # pass, fail or inconclusive
    reasons: list[str]
    candidate: str | None = None
    incumbent: str | None = None
    checks: list[dict[str, Any]] | None = None  # every rule: name, passed, outcome, detail
    warnings: list[str] = Field(default_factory=list)


def run(ws: Workspace, cycle: Cycle) -> Report:
    version = cycle.report(train.NAME, train.Report).version
    return judged(run_gate(ws, str(version)).decision, f"v{version}")


def judged(decision: Mapping[str, Any], candidate: str) -> Report:
    """The stage's report on a gate decision: refused and inconclusive say which rules, by name.
    A federated round's adapter, judged before it is registered, gets the same report."""
    report = Report(
        decision=decision["decision"],
        reasons=decision["reasons"],
        candidate=decision.get("candidate"),
        incumbent=decision.get("incumbent"),
        checks=decision.get("checks"),
        warnings=decision.get("warnings", []),
    )
    failed = ", ".join(c["name"] for c in report.checks or [] if not c.get("passed", True))
    if report.decision == "inconclusive":
        return report.model_copy(
            update={
                "status": "inconclusive",
                "summary": f"{candidate}: the gate could not decide ({failed}); the release waits",
            }
        )
    if report.decision != "pass":
        return report.model_copy(
            update={"status": "refused", "summary": f"{candidate} refused by the gate ({failed})"}
        )
    return report.model_copy(update={"summary": f"{candidate} passed the gate"})
