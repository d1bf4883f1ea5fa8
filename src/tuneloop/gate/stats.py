"""Paired bootstrap intervals: how much a mean difference would move on another draw of items."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BootstrapResult:
    """Mean of the paired differences (candidate - incumbent), its percentile interval, and the
    standard error of the mean (the spread of the resampled means)."""

    delta_mean: float
    low: float
    high: float
    n: int
    se: float = math.nan


def paired_bootstrap(
    candidate: Sequence[float],
    incumbent: Sequence[float],
    samples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Percentile interval of mean(candidate - incumbent), resampling item indices together.

    ``candidate[i]`` and ``incumbent[i]`` must be the two models' scores on the same item. The
    same indices are drawn for both models, so each resample keeps the pairing. One
    (samples x n) index matrix is drawn at once from a seeded numpy Generator: the result is
    reproducible and costs about 16 * samples * n bytes (2000 x 5,000 items: 160 MB).
    With no items, every field but ``n`` is NaN.
    """
    if len(candidate) != len(incumbent):
        raise ValueError(f"paired scores differ in length: {len(candidate)} vs {len(incumbent)}")
    n = len(candidate)
    if n == 0:
        return BootstrapResult(math.nan, math.nan, math.nan, 0)
    diff = np.asarray(candidate, dtype=np.float64) - np.asarray(incumbent, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(samples, n))
    return _percentile_result(float(diff.mean()), diff[idx].mean(axis=1), confidence, n)


def bootstrap_gap(
    first: Sequence[float],
    second: Sequence[float],
    samples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Percentile interval of mean(first) - mean(second) for two independent groups of items.

    Unlike :func:`paired_bootstrap` the two groups hold different items, so each is resampled on
    its own. ``n`` is the smaller group's size; with an empty group every other field is NaN.
    """
    n = min(len(first), len(second))
    if n == 0:
        return BootstrapResult(math.nan, math.nan, math.nan, 0)
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means_a = a[rng.integers(0, len(a), size=(samples, len(a)))].mean(axis=1)
    means_b = b[rng.integers(0, len(b), size=(samples, len(b)))].mean(axis=1)
    return _percentile_result(float(a.mean() - b.mean()), means_a - means_b, confidence, n)


def _percentile_result(
    point: float, resampled: np.ndarray[Any, Any], confidence: float, n: int
) -> BootstrapResult:
    """The point estimate with the central ``confidence`` interval of its resampled values."""
    alpha = 1.0 - confidence
    low, high = np.quantile(resampled, [alpha / 2, 1 - alpha / 2])
    return BootstrapResult(point, float(low), float(high), n, float(np.std(resampled)))


POWER = 0.8  # the chance of a decision that the detectable difference is sized for


def detectable(result: BootstrapResult, confidence: float, power: float = POWER) -> float:
    """The smallest tolerance this sample can hold a candidate to: the margin under which a
    candidate exactly as good as the incumbent would pass only ``1 - power`` of the time.

    A tolerance rule passes when the interval's worse end lies within the tolerance; for a true
    difference of zero that end sits ``z * se`` above zero, so a pass with probability ``power``
    needs a tolerance of ``(z_{1-a/2} + z_power) * se`` (the standard non-inferiority sizing).
    NaN without items; 0 when every item scored the same for both models (no spread to go by).
    """
    if result.n == 0 or math.isnan(result.se):
        return math.nan
    z = NormalDist()
    return (z.inv_cdf(1 - (1 - confidence) / 2) + z.inv_cdf(power)) * result.se


def items_for(n: int, spread: float, distance: float) -> int | None:
    """Items that would shrink an interval's half-width ``spread`` (at ``n`` items) to
    ``distance``, if the estimate holds: half-widths shrink as one over the root of the count.
    None when no count would (the estimate sits on the line)."""
    if distance <= 1e-9 or n == 0:
        return None
    return math.ceil(n * (spread / distance) ** 2)
