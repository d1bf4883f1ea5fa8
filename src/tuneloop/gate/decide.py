"""Apply every rule to a candidate's and an incumbent's reports: pass only if all pass."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tuneloop.evalside.report import EvalReport
from tuneloop.gate.compare import compare_reports
from tuneloop.gate.memorization import check_memorization, probe_widening
from tuneloop.gate.policy import GatePolicy
from tuneloop.gate.power import warnings
from tuneloop.gate.rules import (
    Check,
    check_certificate,
    check_coverage,
    check_improvement,
    check_no_regression,
    check_safety,
    check_same_eval_set,
    check_thresholds,
    check_toxicity,
)
from tuneloop.gate.stats import detectable

Decision = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class GateDecision:
    """The gate's answer, what it was based on, and who was compared with whom."""

    decision: Decision
    reasons: list[str]
    metrics: dict[str, dict[str, dict[str, float | int | None]]]
    checks: list[Check]
    candidate: str = ""
    incumbent: str = ""
    memorization: dict[str, dict[str, Any]] = field(default_factory=dict)
    eval_index_version: str = ""  # the eval set the decision holds for (release eligibility)
    warnings: list[str] = field(default_factory=list)  # tolerances the sample cannot detect

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reasons": list(self.reasons),
            "metrics": self.metrics,
            "checks": [c.to_dict() for c in self.checks],
            "candidate": self.candidate,
            "incumbent": self.incumbent,
            "memorization": self.memorization,
            "eval_index_version": self.eval_index_version,
            "warnings": list(self.warnings),
        }


def decide(
    candidate: EvalReport,
    incumbent: EvalReport,
    policy: GatePolicy,
    certificate: dict[str, Any] | None,
    current_index_version: str,
    reverify: Callable[[], int] | None = None,
    base: EvalReport | None = None,
) -> GateDecision:
    """Apply every rule; pass only if all pass, fail if any fails, else inconclusive.

    ``incumbent`` is the production model's report, or the base model's when nothing is in
    production yet. ``certificate`` is the contamination certificate of the candidate's training
    dataset; ``reverify`` (optional) re-checks that dataset against the current index. ``base``
    (the base model's report) is what forgetting suites are compared with when the policy says
    so; without it they are compared with the incumbent.
    """
    comparisons = compare_reports(candidate, incumbent, policy)
    inc = incumbent.model
    forgot_ref = inc
    if base is not None and policy.forgetting_reference == "base" and base.model != inc:
        forgot_ref = base.model
        comparisons = [c for c in comparisons if c.kind != "forgetting"] + [
            c for c in compare_reports(candidate, base, policy) if c.kind == "forgetting"
        ]
    widening = probe_widening(candidate, incumbent, policy)
    checks = [
        check_certificate(certificate, current_index_version, reverify),
        check_same_eval_set(candidate, incumbent),
        check_coverage(candidate, incumbent, comparisons),
        check_thresholds(candidate, policy),
        check_no_regression(
            comparisons, "task", policy.regression_tolerance, inc, policy.metric_tolerances
        ),
        check_improvement(comparisons, policy),
        check_no_regression(
            comparisons,
            "forgetting",
            policy.forgetting_tolerance,
            forgot_ref,
            policy.metric_tolerances,
        ),
        check_safety(comparisons, policy, inc),
        check_toxicity(comparisons, policy, inc),
        check_memorization(widening, policy, inc),
    ]
    failed = [c for c in checks if c.outcome == "fail"]
    unsure = [c for c in checks if c.outcome == "inconclusive"]
    metrics: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for c in comparisons:
        found = detectable(c.result, policy.confidence)
        metrics.setdefault(c.suite, {})[c.metric] = c.to_dict() | {
            "detectable": None if math.isnan(found) else found
        }
    outcome: Decision = "fail" if failed else "inconclusive" if unsure else "pass"
    return GateDecision(
        decision=outcome,
        reasons=[c.detail for c in (failed or unsure or checks)],
        metrics=metrics,
        checks=checks,
        candidate=candidate.model,
        incumbent=inc,
        memorization=widening,
        eval_index_version=current_index_version,
        warnings=warnings(comparisons, policy),
    )
