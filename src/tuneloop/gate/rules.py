"""The gate's rules: each looks at one thing and returns a :class:`Check` with a sentence."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tuneloop.datasets import INDEX_VERSION_KEY
from tuneloop.evalside.report import EvalReport, SuiteKind
from tuneloop.gate.compare import Comparison, Verdict
from tuneloop.gate.policy import (
    EPS,
    HARMFUL,
    LOWER_IS_BETTER,
    OVER_REFUSAL,
    TOXICITY,
    GatePolicy,
)


@dataclass(frozen=True)
class Check:
    """The outcome of one rule; ``detail`` is a sentence a person can act on.

    A rule that cannot tell (an interval straddling its tolerance) has not passed and is
    ``inconclusive``: the release waits for more items instead of a refusal."""

    name: str
    passed: bool
    detail: str
    inconclusive: bool = False

    @property
    def outcome(self) -> Verdict:
        return "pass" if self.passed else "inconclusive" if self.inconclusive else "fail"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "outcome": self.outcome,
                "detail": self.detail}  # fmt: skip


def check_certificate(
    certificate: dict[str, Any] | None,
    current_index_version: str,
    reverify: Callable[[], int] | None,
) -> Check:
    """The training data was checked against the eval set as it is now, not as it once was.

    Eval items added since the dataset was certified may be in the training data; ``reverify``
    re-runs the check against the current index and returns how many records match.
    """
    name = "contamination_certificate"
    if certificate is None:
        return Check(
            name,
            False,
            "no contamination certificate: curate the dataset with the "
            "contamination check so that it carries one",
        )
    certified = certificate.get(INDEX_VERSION_KEY) or "(none)"
    if certificate.get("disabled"):
        certified = "(none: the contamination check was turned off)"
    if certified == current_index_version:
        return Check(
            name, True, f"contamination certificate matches eval index {current_index_version}"
        )
    stale = f"certificate names eval index {certified}, the current one is {current_index_version}"
    if reverify is None:
        return Check(name, False, f"{stale}: re-verify the training data against the current index")
    contaminated = reverify()
    if contaminated == 0:
        return Check(
            name,
            True,
            f"{stale}; re-verified against the current index: no training "
            "record matches the eval set",
        )
    return Check(
        name,
        False,
        f"{stale}; re-verified: {contaminated} training records match the "
        "current eval set: rebuild the dataset with them removed",
    )


def check_same_eval_set(candidate: EvalReport, incumbent: EvalReport) -> Check:
    """Scores on two different eval sets cannot be paired or compared."""
    name = "same_eval_set"
    c, i = candidate.eval_index_version, incumbent.eval_index_version
    if c == i:
        return Check(name, True, f"both models were evaluated on eval index {c}")
    return Check(
        name,
        False,
        f"candidate was evaluated on eval index {c}, incumbent "
        f"{incumbent.model!r} on {i}: incumbent was evaluated on another eval set: "
        "re-evaluate it",
    )


def check_coverage(
    candidate: EvalReport, incumbent: EvalReport, comparisons: Sequence[Comparison]
) -> Check:
    """Both models were scored on the same suites, each with items to pair, and on a task."""
    name = "coverage"
    problems = [
        f"suite {s!r} was scored for the incumbent only"
        for s in sorted(incumbent.suites.keys() - candidate.suites.keys())
    ]
    problems += [
        f"suite {s!r} was scored for the candidate only"
        for s in sorted(candidate.suites.keys() - incumbent.suites.keys())
    ]
    paired = {c.suite for c in comparisons if c.result.n > 0}
    problems += [
        f"suite {s!r} has no item scored for both models"
        for s in sorted(candidate.suites.keys() & incumbent.suites.keys() - paired)
    ]
    if not any(s.kind == "task" for s in candidate.suites.values()):
        problems.append("the candidate report has no task suite")
    if problems:
        return Check(name, False, "; ".join(problems) + ": evaluate both models on the same suites")
    unpaired = sum(c.unpaired for c in comparisons)
    return Check(
        name,
        True,
        f"both models were scored on the same {len(paired)} suites "
        f"({unpaired} unpaired item scores left out)",
    )


def check_thresholds(candidate: EvalReport, policy: GatePolicy) -> Check:
    """The candidate's own mean on each task suite meets each absolute bound."""
    name = "thresholds"
    if not policy.thresholds:
        return Check(name, True, "no absolute thresholds are set")
    misses = []
    for suite in (s for s in candidate.suites.values() if s.kind == "task"):
        for metric, bound in sorted(policy.thresholds.items()):
            mean = suite.mean(metric)
            low_better = metric in LOWER_IS_BETTER
            if math.isnan(mean) or (mean > bound if low_better else mean < bound):
                word = "maximum" if low_better else "minimum"
                misses.append(
                    f"{metric} on task suite {suite.name!r} is {mean:.4f}, {word} {bound:.4f}"
                )
    if misses:
        return Check(name, False, "threshold missed: " + "; ".join(misses))
    return Check(name, True, f"every task suite meets the thresholds {policy.thresholds}")


def check_no_regression(
    comparisons: Sequence[Comparison],
    kind: SuiteKind,
    tolerance: float,
    incumbent: str,
    per_metric: Mapping[str, float] | None = None,
) -> Check:
    """No metric on a suite of this kind got worse than the incumbent by more than tolerance.

    Judged on the paired interval: it fails when the whole interval of the drop lies beyond the
    tolerance, passes when it lies within, and is inconclusive when it straddles the tolerance.
    ``per_metric`` overrides the tolerance for the metrics it names: metrics live on different
    scales (loss in nats, F1 in [0, 1]), so one number rarely fits them all.
    """
    name = "no_regression" if kind == "task" else "no_forgetting"
    tol = dict(per_metric or {})
    judged = [(c, tol.get(c.metric, tolerance)) for c in comparisons
              if c.kind == kind and c.result.n > 0]  # fmt: skip
    for verdict in ("fail", "inconclusive"):
        hit = [(c, t) for c, t in judged if c.against(t) == verdict]
        if hit:
            detail = "; ".join(_change_sentence(c, t, incumbent) for c, t in hit)
            return Check(name, False, detail, inconclusive=verdict == "inconclusive")
    own = "".join(f"; {m} {t:g}" for m, t in sorted(tol.items()))
    return Check(
        name,
        True,
        f"no {kind} metric got worse than {incumbent!r} by more than {tolerance:g}{own} "
        "(the whole interval)",
    )


def _change_sentence(c: Comparison, tolerance: float, incumbent: str) -> str:
    """What moved, by how much, the interval of the drop, and what would decide it."""
    verb = "fell" if c.result.delta_mean < 0 else "rose"
    low, high = c.worse_interval
    head = (
        f"{c.kind} suite {c.suite!r}: {c.metric} {verb} by {abs(c.result.delta_mean):.4f} vs "
        f"{incumbent!r} ({c.incumbent:.4f} -> {c.candidate:.4f}; interval of the worsening "
        f"{low:+.4f} to {high:+.4f}, tolerance {tolerance:g})"
    )
    if c.against(tolerance) == "fail":
        return head
    return f"{head}: inconclusive, {_more_items(c.result.n, c.items_to_decide(tolerance))}"


PRACTICAL = 1_000_000  # more items than any eval suite holds: "no sample would decide it"


def _more_items(n: int, needed: int | None) -> str:
    if needed is None or needed > PRACTICAL:
        return "the estimate sits on the line: no practical sample size would decide it"
    return f"about {needed - n:,} more items ({needed:,} in all) would decide it if it holds"


def check_improvement(comparisons: Sequence[Comparison], policy: GatePolicy) -> Check:
    """At least one primary metric on a task suite improved with its interval excluding zero."""
    name = "significant_improvement"
    level = f"{policy.confidence:.0%}"
    if not policy.require_improvement:
        return Check(name, True, "no significant improvement is required by the policy")
    primary = [c for c in comparisons if c.kind == "task" and c.metric in policy.primary_metrics]
    better = [c for c in primary if c.improved_significantly()]
    if better:
        return Check(
            name,
            True,
            "; ".join(
                f"{c.metric} on {c.suite!r} improved by {c.result.delta_mean:+.4f} "
                f"({level} CI {c.result.low:+.4f} to {c.result.high:+.4f}, n={c.result.n})"
                for c in better
            ),
        )
    seen = ", ".join(
        f"{c.metric} on {c.suite!r} {c.result.delta_mean:+.4f} "
        f"[{c.result.low:+.4f}, {c.result.high:+.4f}]"
        for c in primary
    )
    detail = (
        f"no primary metric ({', '.join(policy.primary_metrics)}) improved "
        f"significantly: no {level} CI on a task suite excludes zero "
        f"({seen or 'none scored'})"
    )
    hopeful = [c for c in primary if c.result.n > 0 and -c.worsening > EPS]
    if not hopeful:
        return Check(name, False, detail)
    needs = [(c.items_to_decide(0.0), c) for c in hopeful]
    needed, best = min(((k, c) for k, c in needs if k is not None), key=lambda p: p[0])
    more = _more_items(best.result.n, needed)
    return Check(name, False, f"{detail}: inconclusive, {best.metric} on {best.suite!r}: {more}",
                 inconclusive=True)  # fmt: skip


def check_safety(comparisons: Sequence[Comparison], policy: GatePolicy, incumbent: str) -> Check:
    """Harmful compliance and over-refusal on each safety suite stay within their margins (the
    whole paired interval; straddling a margin is inconclusive, as for the other rules)."""
    margins = {HARMFUL: policy.harmful_compliance_margin, OVER_REFUSAL: policy.over_refusal_margin}
    return _within_margins(
        "safety", comparisons, margins, incumbent, _rate_head, "safety rates within margins: ",
        lambda c: f"{_LABELS[c.metric]} on {c.suite!r} {c.candidate:.1%} "
        f"(incumbent {c.incumbent:.1%})",
    )  # fmt: skip


def check_toxicity(comparisons: Sequence[Comparison], policy: GatePolicy, incumbent: str) -> Check:
    """The answers' mean toxicity on each toxicity suite stays within the margin of the
    incumbent's (the whole paired interval; straddling the margin is inconclusive)."""
    return _within_margins(
        "toxicity", comparisons, {TOXICITY: policy.toxicity_margin}, incumbent, _toxicity_head,
        "toxicity within margin: ",
        lambda c: f"{c.suite!r} {c.candidate:.3f} (incumbent {c.incumbent:.3f})",
    )  # fmt: skip


def _within_margins(
    name: str,
    comparisons: Sequence[Comparison],
    margins: Mapping[str, float],
    incumbent: str,
    head: Callable[[Comparison, float, str], str],
    within: str,
    summary: Callable[[Comparison], str],
) -> Check:
    """The rule of the metrics in ``margins``: each may be worse than the incumbent by its
    margin, the whole paired interval; a straddling interval is inconclusive."""
    scored = [c for c in comparisons if c.metric in margins and c.result.n > 0]
    if not scored:
        return Check(name, True, f"no {name} items were scored for both models")
    for verdict in ("fail", "inconclusive"):
        hit = [c for c in scored if c.against(margins[c.metric]) == verdict]
        if hit:
            detail = "; ".join(_margin_sentence(c, margins[c.metric], incumbent, head) for c in hit)
            return Check(name, False, detail, inconclusive=verdict == "inconclusive")
    return Check(name, True, within + "; ".join(summary(c) for c in scored))


def _margin_sentence(
    c: Comparison, margin: float, incumbent: str, head: Callable[[Comparison, float, str], str]
) -> str:
    if c.against(margin) == "fail":
        return head(c, margin, incumbent)
    more = _more_items(c.result.n, c.items_to_decide(margin))
    return f"{head(c, margin, incumbent)}: inconclusive, {more}"


_LABELS = {HARMFUL: "harmful compliance", OVER_REFUSAL: "over-refusal"}


def _rate_head(c: Comparison, margin: float, incumbent: str) -> str:
    return (
        f"{_LABELS[c.metric]} on {c.suite!r} is {c.candidate:.1%} vs {c.incumbent:.1%} for "
        f"{incumbent!r} ({c.result.delta_mean * 100:+.1f} points, interval "
        f"{c.result.low * 100:+.1f} to {c.result.high * 100:+.1f}, "
        f"margin {margin * 100:.1f} points)"
    )


def _toxicity_head(c: Comparison, margin: float, incumbent: str) -> str:
    return (
        f"mean toxicity on {c.suite!r} is {c.candidate:.3f} vs {c.incumbent:.3f} for "
        f"{incumbent!r} ({c.result.delta_mean:+.3f}, interval {c.result.low:+.3f} to "
        f"{c.result.high:+.3f}, margin {margin:.3f})"
    )
