"""Pair the two models' scores item by item and bootstrap each metric's delta, per suite."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tuneloop.evalside.report import EvalReport, ItemScore, SuiteKind, SuiteResult
from tuneloop.gate.policy import EPS, HARMFUL, LOWER_IS_BETTER, OVER_REFUSAL, GatePolicy
from tuneloop.gate.stats import BootstrapResult, items_for, paired_bootstrap

Verdict = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Comparison:
    """One metric on one suite: paired means of both models and the bootstrap of the delta."""

    suite: str
    kind: SuiteKind
    metric: str
    candidate: float
    incumbent: float
    result: BootstrapResult
    unpaired: int  # items scored for one model only, left out of the comparison

    @property
    def worsening(self) -> float:
        """How much worse the candidate is (positive = worse), whatever the metric's direction."""
        return -self.result.delta_mean if self.higher_is_better else self.result.delta_mean

    @property
    def higher_is_better(self) -> bool:
        return self.metric not in LOWER_IS_BETTER

    @property
    def worse_interval(self) -> tuple[float, float]:
        """The interval of :attr:`worsening` (low, high): how much worse, at best and at worst."""
        r = self.result
        return (-r.high, -r.low) if self.higher_is_better else (r.low, r.high)

    def against(self, tolerance: float) -> Verdict:
        """Within ``tolerance`` (the whole interval), beyond it (the whole interval), or neither:
        noise must neither pass nor refuse a candidate, so a straddling interval decides nothing."""
        low, high = self.worse_interval
        if high <= tolerance + EPS:
            return "pass"
        return "fail" if low > tolerance + EPS else "inconclusive"

    def items_to_decide(self, tolerance: float) -> int | None:
        """Items (in all) that would put the interval on one side of ``tolerance``, if the
        estimate holds; None when it sits on the tolerance itself."""
        low, high = self.worse_interval
        w = self.worsening
        spread = high - w if w < tolerance else w - low
        return items_for(self.result.n, spread, abs(tolerance - w))

    def improved_significantly(self) -> bool:
        """Interval entirely on the good side of zero."""
        return self.result.low > 0 if self.higher_is_better else self.result.high < 0

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-ready: NaN (nothing to pair) becomes None."""
        r = self.result
        values = (self.candidate, self.incumbent, r.delta_mean, r.low, r.high)
        keys = ("candidate", "incumbent", "delta", "low", "high")
        out: dict[str, float | int | None] = {
            k: None if math.isnan(v) else v for k, v in zip(keys, values, strict=True)
        }
        return out | {"n": r.n, "unpaired": self.unpaired}


def _by_id(suite: SuiteResult) -> dict[str, ItemScore]:
    return {item.item_id: item for item in suite.items}


def _paired(
    cand: dict[str, ItemScore],
    inc: dict[str, ItemScore],
    value: Callable[[ItemScore], float | None],
) -> tuple[list[float], list[float], int]:
    """Both models' values on the items where both have one, plus the count of the others."""
    cv = {k: v for k, item in cand.items() if (v := value(item)) is not None}
    iv = {k: v for k, item in inc.items() if (v := value(item)) is not None}
    common = sorted(cv.keys() & iv.keys())
    return [cv[k] for k in common], [iv[k] for k in common], len(cv.keys() ^ iv.keys())


def _metric(name: str) -> Callable[[ItemScore], float | None]:
    def value(item: ItemScore) -> float | None:
        v = item.metrics.get(name)
        return None if v is None or math.isnan(v) else v

    return value


def _rate(expected: str, counted_when_refused: bool) -> Callable[[ItemScore], float | None]:
    """Indicator of a safety failure on items with this expectation (None elsewhere)."""

    def value(item: ItemScore) -> float | None:
        if item.expected != expected or item.refused is None:
            return None
        return float(item.refused == counted_when_refused)

    return value


def _compare(
    name: str,
    cand: SuiteResult,
    inc: SuiteResult,
    metric: str,
    value: Callable[[ItemScore], float | None],
    policy: GatePolicy,
) -> Comparison:
    c, i, unpaired = _paired(_by_id(cand), _by_id(inc), value)
    result = paired_bootstrap(c, i, policy.bootstrap_samples, policy.confidence, policy.seed)
    c_mean = float(np.mean(c)) if c else math.nan
    i_mean = float(np.mean(i)) if i else math.nan
    return Comparison(name, cand.kind, metric, c_mean, i_mean, result, unpaired)


def compare_reports(
    candidate: EvalReport, incumbent: EvalReport, policy: GatePolicy
) -> list[Comparison]:
    """Every metric both models were scored on, per suite in both reports; safety rates too."""
    out: list[Comparison] = []
    for name in sorted(candidate.suites.keys() & incumbent.suites.keys()):
        cand, inc = candidate.suites[name], incumbent.suites[name]
        names = {m for i in cand.items for m in i.metrics} & {
            m for i in inc.items for m in i.metrics
        }
        out += [_compare(name, cand, inc, m, _metric(m), policy) for m in sorted(names)]
        if cand.kind == "safety":
            out.append(_compare(name, cand, inc, HARMFUL, _rate("refuse", False), policy))
            out.append(_compare(name, cand, inc, OVER_REFUSAL, _rate("comply", True), policy))
    return out
