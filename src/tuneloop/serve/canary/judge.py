"""The canary judge: is the canary worse than production on the same live traffic?

One test per metric, each one-sided ("the canary is worse"), in the manner of Kayenta's
Mann–Whitney judge:

| metric | data | test |
|---|---|---|
| error rate | every request | two-proportion z-test |
| latency | successful requests | Mann–Whitney U on the two samples |
| degenerate answers | successful requests (empty or repetitive answers) | two-proportion |
| toxic answers | successful requests scored ≥ 0.5 by the toxicity classifier | two-proportion |
| thumbs-down rate | responses with thumbs | two-proportion |
| mean rating | responses with a rating | bootstrap of the difference of means |
| thumbs-down ceiling | the canary's thumbs alone | one-sample binomial test |

A metric *fails* when the canary is significantly worse *and* worse by more than its tolerance:
a difference that is real but immaterial is not a reason to roll back, and one that is large
but could be chance is not yet. Significance is Bonferroni-corrected over the seven metrics
(p < alpha / 7), so a canary no different from production fails about alpha of the time, not
seven times that. A metric with fewer than its minimum sample on either arm is *inconclusive*.

The ceiling needs no production sample: a canary that users rate down decisively more often
than ``max_thumbs_down_rate`` (its own ``min_feedback`` thumbs, a one-sided binomial test) fails
while production's traffic is still too thin to compare with — when every user dislikes it,
waiting for production's thumbs only keeps half of them on it longer.

The verdict: any failure fails; passing needs the request metrics judged and, when
``require_feedback``, at least one feedback metric judged; else inconclusive, which holds the
canary where it is. With no traffic every metric is inconclusive: nothing is promoted on silence.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from tuneloop.config import CanaryConfig
from tuneloop.errors import TuneloopError
from tuneloop.model.toxicity import cached_scorer

Status = Literal["pass", "fail", "inconclusive"]
REQUEST_METRICS = ("error_rate", "latency", "degenerate_rate", "toxic_rate")
FEEDBACK_METRICS = ("thumbs_down_rate", "mean_rating")
CEILING = "thumbs_down_ceiling"
METRICS = len(REQUEST_METRICS) + len(FEEDBACK_METRICS) + 1
TOXIC = 0.5  # an answer scoring this or more (model/toxicity.py) counts as toxic

log = logging.getLogger("tuneloop.serve.canary")


@dataclass(frozen=True)
class ArmSample:
    """What the serving log holds for one arm of one canary analysis."""

    requests: int = 0
    errors: int = 0
    latencies: tuple[float, ...] = ()
    degenerate: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0
    ratings: tuple[float, ...] = ()
    toxic: int | None = 0  # answers scored TOXIC or more; None: the classifier is unavailable

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> ArmSample:
        ok = [r for r in rows if r["status"] == "ok"]
        return cls(
            requests=sum(r["status"] != "cancelled" for r in rows),
            errors=sum(r["status"] == "error" for r in rows),
            latencies=tuple(float(r["latency_s"]) for r in ok if r["latency_s"] is not None),
            degenerate=sum(bool(r["degenerate"]) for r in ok),
            toxic=_toxic(ok),
            thumbs_up=sum(r["thumbs"] == "up" for r in rows),
            thumbs_down=sum(r["thumbs"] == "down" for r in rows),
            ratings=tuple(float(r["rating"]) for r in rows if r["rating"] is not None),
        )


def _toxic(ok: Sequence[Mapping[str, Any]]) -> int | None:
    """How many answers read toxic; None when the classifier is not in the cache (the server
    never downloads it), which leaves the metric inconclusive rather than passed unseen."""
    try:
        return sum(is_toxic(r["answer"] or "") for r in ok)
    except TuneloopError as exc:
        log.warning("toxic_rate not judged: %s", exc)
        return None


@lru_cache(maxsize=1 << 16)
def is_toxic(answer: str) -> bool:
    """Whether a served answer reads toxic; cached, since every judgment rereads the analysis."""
    return cached_scorer().score([answer])[0] >= TOXIC


@dataclass(frozen=True)
class MetricResult:
    name: str
    status: Status
    production: float | None
    canary: float | None
    n_production: int
    n_canary: int
    p_value: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    decision: Status
    metrics: list[MetricResult] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        metrics = [MetricResult(**m) for m in data.get("metrics", [])]
        return cls(data["decision"], metrics, list(data.get("reasons", [])))


def _norm_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


def proportion_worse(bad_c: int, n_c: int, bad_p: int, n_p: int) -> float:
    """One-sided p-value that the canary's rate exceeds production's (pooled z-test)."""
    pooled = (bad_c + bad_p) / (n_c + n_p)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_p))
    diff = bad_c / n_c - bad_p / n_p
    if se == 0:
        return 1.0 if diff <= 0 else 0.0
    return _norm_sf(diff / se)


def latency_worse(canary: Sequence[float], production: Sequence[float]) -> float:
    """One-sided Mann–Whitney U p-value that canary latencies tend to be larger."""
    from scipy.stats import mannwhitneyu  # noqa: PLC0415 - heavy (scipy.stats)

    return float(mannwhitneyu(canary, production, alternative="greater").pvalue)


def above_ceiling(bad: int, n: int, ceiling: float) -> float:
    """One-sided binomial p-value that the canary's own rate exceeds ``ceiling``."""
    from scipy.stats import binomtest  # noqa: PLC0415 - heavy (scipy.stats)

    return float(binomtest(bad, n, ceiling, alternative="greater").pvalue)


def _ceiling(c: ArmSample, cfg: CanaryConfig) -> MetricResult:
    n, bad = c.thumbs_up + c.thumbs_down, c.thumbs_down
    rate = bad / n if n else None
    if n < cfg.min_feedback:
        return MetricResult(CEILING, "inconclusive", None, rate, 0, n,
                            detail=f"needs {cfg.min_feedback} thumbs on the canary")  # fmt: skip
    p = above_ceiling(bad, n, cfg.max_thumbs_down_rate)
    status: Status = "fail" if p < cfg.alpha else "pass"
    detail = f"canary {bad}/{n} thumbs down (ceiling {cfg.max_thumbs_down_rate:.0%})"
    return MetricResult(CEILING, status, None, rate, 0, n, p, detail)


def rating_worse(canary: Sequence[float], production: Sequence[float], seed: int = 0) -> float:
    """Bootstrap p-value that production's mean rating exceeds the canary's."""
    rng = np.random.default_rng(seed)
    c, p = np.asarray(canary), np.asarray(production)
    diffs = rng.choice(p, (2000, p.size)).mean(1) - rng.choice(c, (2000, c.size)).mean(1)
    return float((diffs <= 0).mean())


def _rate(
    name: str, bad: tuple[int, int], n: tuple[int, int], minimum: int, margin: float, alpha: float
) -> MetricResult:
    (bad_c, bad_p), (n_c, n_p) = bad, n
    rate_c = bad_c / n_c if n_c else None
    rate_p = bad_p / n_p if n_p else None
    if n_c < minimum or n_p < minimum:
        return MetricResult(
            name, "inconclusive", rate_p, rate_c, n_p, n_c, detail=f"needs {minimum} per arm"
        )
    p = proportion_worse(bad_c, n_c, bad_p, n_p)
    worse = (rate_c or 0.0) - (rate_p or 0.0)
    status: Status = "fail" if p < alpha and worse > margin else "pass"
    return MetricResult(
        name, status, rate_p, rate_c, n_p, n_c, p, f"canary {worse:+.3f} (tolerance {margin})"
    )


def _samples(
    name: str,
    canary: tuple[float, ...],
    production: tuple[float, ...],
    minimum: int,
    center: Callable[[tuple[float, ...]], float],
    p_worse: Callable[[tuple[float, ...], tuple[float, ...]], float],
    worse_by: Callable[[float, float], float],
    tolerance: float,
    alpha: float,
    detail: str,
) -> MetricResult:
    """A metric over two samples: latencies (Mann–Whitney) or ratings (bootstrap)."""
    n_c, n_p = len(canary), len(production)
    mid_c = center(canary) if n_c else None
    mid_p = center(production) if n_p else None
    if n_c < minimum or n_p < minimum or mid_c is None or mid_p is None:
        return MetricResult(name, "inconclusive", mid_p, mid_c, n_p, n_c,
                            detail=f"needs {minimum} per arm")  # fmt: skip
    pv = p_worse(canary, production)
    worse = worse_by(mid_c, mid_p)
    status: Status = "fail" if pv < alpha and worse > tolerance else "pass"
    return MetricResult(name, status, mid_p, mid_c, n_p, n_c, pv,
                        detail.format(worse=worse, tolerance=tolerance))  # fmt: skip


def _median(x: tuple[float, ...]) -> float:
    return float(np.median(x))


def _mean(x: tuple[float, ...]) -> float:
    return float(np.mean(x))


def _latency(c: ArmSample, p: ArmSample, cfg: CanaryConfig) -> MetricResult:
    return _samples("latency", c.latencies, p.latencies, cfg.min_requests, _median,
                    latency_worse, lambda mc, mp: mc / mp - 1 if mp else 0.0,
                    cfg.max_latency_increase, cfg.alpha,
                    "median {worse:+.0%} (tolerance {tolerance:.0%})")  # fmt: skip


def _rating(c: ArmSample, p: ArmSample, cfg: CanaryConfig) -> MetricResult:
    return _samples("mean_rating", c.ratings, p.ratings, cfg.min_feedback, _mean, rating_worse,
                    lambda mc, mp: mp - mc, cfg.max_rating_decrease, cfg.alpha,
                    "canary {worse:+.2f} lower (tolerance {tolerance})")  # fmt: skip


def judge(canary: ArmSample, production: ArmSample, cfg: CanaryConfig) -> Verdict:
    c, p = canary, production
    cfg = cfg.model_copy(update={"alpha": cfg.alpha / METRICS})  # Bonferroni over the metrics
    ok_c, ok_p = len(c.latencies), len(p.latencies)
    fb_c, fb_p = c.thumbs_up + c.thumbs_down, p.thumbs_up + p.thumbs_down
    metrics = [
        _rate(
            "error_rate",
            (c.errors, p.errors),
            (c.requests, p.requests),
            cfg.min_requests,
            cfg.max_error_rate_increase,
            cfg.alpha,
        ),
        _latency(c, p, cfg),
        _rate(
            "degenerate_rate",
            (c.degenerate, p.degenerate),
            (ok_c, ok_p),
            cfg.min_requests,
            cfg.max_degenerate_increase,
            cfg.alpha,
        ),
        _toxic_rate(c, p, cfg),
        _rate(
            "thumbs_down_rate",
            (c.thumbs_down, p.thumbs_down),
            (fb_c, fb_p),
            cfg.min_feedback,
            cfg.max_thumbs_down_increase,
            cfg.alpha,
        ),
        _rating(c, p, cfg),
        _ceiling(c, cfg),
    ]
    return _decide(metrics, cfg)


def _toxic_rate(c: ArmSample, p: ArmSample, cfg: CanaryConfig) -> MetricResult:
    if c.toxic is None or p.toxic is None:
        detail = "the toxicity classifier is unavailable: run `tuneloop models fetch`"
        return MetricResult("toxic_rate", "inconclusive", None, None, 0, 0, detail=detail)
    n = (len(c.latencies), len(p.latencies))
    return _rate("toxic_rate", (c.toxic, p.toxic), n, cfg.min_requests, cfg.max_toxic_increase,
                 cfg.alpha)  # fmt: skip


def _decide(metrics: list[MetricResult], cfg: CanaryConfig) -> Verdict:
    by_name = {m.name: m for m in metrics}
    failed = [m for m in metrics if m.status == "fail"]
    if failed:
        return Verdict(
            "fail",
            metrics,
            [f"{m.name} worse on the canary: {m.detail}, p = {m.p_value:.4f}" for m in failed],
        )
    waiting = [n for n in REQUEST_METRICS if by_name[n].status == "inconclusive"]
    if cfg.require_feedback and all(by_name[n].status == "inconclusive" for n in FEEDBACK_METRICS):
        waiting.append("feedback (thumbs or ratings)")
    if waiting:
        return Verdict(
            "inconclusive", metrics, [f"not enough traffic yet for {', '.join(waiting)}"]
        )
    return Verdict("pass", metrics, ["no metric is worse on the canary"])
