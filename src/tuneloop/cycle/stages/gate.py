"""gate: the candidate against production (or the base model) on the same items; a refusal
ends the cycle, an inconclusive decision holds the release."""

from __future__ import annotations

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
    decision = run_gate(ws, str(version)).decision
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
                "summary": f"v{version}: the gate could not decide ({failed}); the release waits",
            }
        )
    if report.decision != "pass":
        return report.model_copy(
            update={"status": "refused", "summary": f"v{version} refused by the gate ({failed})"}
        )
    return report.model_copy(update={"summary": f"v{version} passed the gate"})
