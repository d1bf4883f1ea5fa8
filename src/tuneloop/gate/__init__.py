"""The gate: may this candidate model replace the incumbent? A decision, with its reasons.

The gate reads two evaluator reports (per-item scores of the candidate and of the incumbent: the
production model, or the base model when there is none) and applies a list of small rules, each
returning a :class:`Check`. The candidate passes only when every check passes, is refused when
one fails, and is *inconclusive* (the release waits) when a rule's sample could not tell. Every
failing rule gives a sentence saying what failed and by how much; a pass lists why it passed.

Why paired, and why a bootstrap: both models answered the *same* items, so comparing them item by
item cancels item difficulty (a hard item is hard for both), which leaves far less noise than
comparing two independent means. Resampling the items with replacement then tells how much the
mean difference would move on another draw of items of the same kind. A candidate must show an
improvement whose confidence interval excludes zero, not just a positive point delta: on a few
hundred items a point delta of +0.01 is often noise, and promoting noise every week makes the
production model random-walk. Regressions are judged on the same interval against a tolerance:
entirely within it passes, entirely beyond it fails, and across it is inconclusive, so a wide
interval neither excuses a real drop nor turns noise into a refusal. :mod:`tuneloop.gate.power`
says, per metric, the smallest tolerance the sample can hold a candidate to.
"""

from tuneloop.gate.compare import Comparison, compare_reports
from tuneloop.gate.decide import Decision, GateDecision, decide
from tuneloop.gate.memorization import check_memorization, probe_widening
from tuneloop.gate.policy import EPS, HARMFUL, LOWER_IS_BETTER, OVER_REFUSAL, GatePolicy
from tuneloop.gate.rules import (
    Check,
    check_certificate,
    check_coverage,
    check_improvement,
    check_no_regression,
    check_safety,
    check_same_eval_set,
    check_thresholds,
)
from tuneloop.gate.stats import BootstrapResult, bootstrap_gap, paired_bootstrap

__all__ = [
    "EPS",
    "HARMFUL",
    "LOWER_IS_BETTER",
    "OVER_REFUSAL",
    "BootstrapResult",
    "Check",
    "Comparison",
    "Decision",
    "GateDecision",
    "GatePolicy",
    "bootstrap_gap",
    "check_certificate",
    "check_coverage",
    "check_improvement",
    "check_memorization",
    "check_no_regression",
    "check_safety",
    "check_same_eval_set",
    "check_thresholds",
    "compare_reports",
    "decide",
    "paired_bootstrap",
    "probe_widening",
]
