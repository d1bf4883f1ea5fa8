"""Paired bootstrap intervals: how much a mean difference would move on another draw of items."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BootstrapResult:
    """Mean of the paired differences (candidate - incumbent) and its percentile interval."""

    delta_mean: float
    low: float
    high: float
    n: int


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
    return BootstrapResult(point, float(low), float(high), n)
