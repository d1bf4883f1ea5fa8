"""The semantic check's threshold, calibrated per suite from the suite's own nearest neighbours.

A paraphrase of an eval item sits close to it in embedding space, but so does any item of the
same kind when the items are templated. Each item's cosine to its nearest other item of its suite
(leave one out) is what a clean record of the suite's kind scores against the suite, so a suite's
threshold is a high quantile of those cosines plus a margin, never below a floor. Where that comes
out above the ceiling, the suite's items are as close to each other as a reworded copy is to its
source (support chats written from templates): no threshold separates the two, and the check is
off for that suite, which the calibration says. Benchmark questions are far apart: on GSM8K test
the 99th percentile of nearest-neighbour cosines is 0.83 (docs/contamination.md, "GSM8K").

Two items at cosine >= ``copy`` are one question held twice (MMLU test holds 524 such), not
neighbours: they are skipped. The nearest-neighbour cosines are kept per item and updated
incrementally (new items against their suite), so growing the index in steps gives the same
thresholds as one build.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

F32Array = npt.NDArray[np.float32]
I64Array = npt.NDArray[np.int64]
FEW_ITEMS = 30  # under this, a suite's percentile is its closest pair or two: said so
CHUNK = 1024  # rows of the similarity matrix computed at once (CHUNK x suite size floats)


@dataclass(frozen=True)
class SemanticRule:
    """How a suite's threshold is set (see the module docstring)."""

    floor: float = 0.85
    quantile: float = 0.99
    margin: float = 0.03
    ceiling: float = 0.95
    copy: float = 0.995  # two items this close are one question held twice, not neighbours


@dataclass(frozen=True)
class SuiteCalibration:
    """One suite's semantic threshold, or ``None`` where the suite is too templated for it."""

    items: int
    neighbour_quantile: float  # the rule's quantile of the items' nearest-neighbour cosines
    threshold: float | None

    @property
    def on(self) -> bool:
        return self.threshold is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self, suite: str, rule: SemanticRule) -> str:
        """One line for people: the threshold, or why the check is off for this suite."""
        if self.neighbour_quantile <= -1.0:  # one item, or only copies of one: no neighbours
            return (
                f"semantic check on for suite {suite!r}: threshold {rule.floor:.3f}, the floor "
                f"({self.items} item{'s' if self.items != 1 else ''} with no other question to "
                "calibrate from; add items and the threshold is set from their neighbours)"
            )
        near = (
            f"its items' nearest neighbours reach cosine {self.neighbour_quantile:.3f} at the "
            f"{rule.quantile * 100:g}th percentile"
        )
        if self.items < FEW_ITEMS:
            near += f"; {self.items} items are few to calibrate from, so it may move as they grow"
        if self.threshold is not None:
            return f"semantic check on for suite {suite!r}: threshold {self.threshold:.3f} ({near})"
        return (
            f"semantic check off for suite {suite!r}: too templated ({near}, so a threshold above "
            f"them passes the ceiling {rule.ceiling:.2f}); the lexical checks still apply"
        )


def update_neighbours(
    embeddings: F32Array, suite_of: I64Array, old: F32Array | None, first: int, copy: float
) -> F32Array:
    """Each item's cosine to its nearest other item of its suite, after items ``first..`` were
    added (``old`` holds the values of the items before them; -1 for an item alone). Copies
    (cosine >= ``copy``: the same question held twice, as MMLU test holds some) are skipped:
    a clean record is no closer to an item for its having a twin."""
    n = embeddings.shape[0]
    near = np.full(n, -1.0, dtype=np.float32)
    if old is not None and first:
        near[:first] = old[:first]
    for suite in np.unique(suite_of[first:]):
        members = np.flatnonzero(suite_of == suite)
        fresh = members[members >= first]
        suite_vectors = embeddings[members]
        for start in range(0, fresh.shape[0], CHUNK):
            rows = fresh[start : start + CHUNK]
            sims = embeddings[rows] @ suite_vectors.T
            sims[np.arange(rows.shape[0]), np.searchsorted(members, rows)] = -1.0  # not itself
            sims[sims >= copy] = -1.0
            near[rows] = np.maximum(near[rows], sims.max(axis=1))
            near[members] = np.maximum(near[members], sims.max(axis=0))
    return near


def calibrate(neighbours: F32Array, rule: SemanticRule) -> SuiteCalibration:
    """A suite's threshold from its items' nearest-neighbour cosines."""
    known = neighbours[neighbours >= -1.0 + 1e-6]  # an item alone in its suite has none
    if known.shape[0] == 0:
        return SuiteCalibration(int(neighbours.shape[0]), -1.0, rule.floor)
    q = round(float(np.quantile(known, rule.quantile)), 4)
    threshold = round(max(rule.floor, q + rule.margin), 4)
    return SuiteCalibration(
        int(neighbours.shape[0]), q, None if threshold > rule.ceiling else threshold
    )


def calibrate_all(
    neighbours: F32Array, suite_of: I64Array, names: Sequence[str], rule: SemanticRule
) -> dict[str, SuiteCalibration]:
    """Every suite's calibration, by suite name."""
    return {
        name: calibrate(neighbours[suite_of == k], rule)
        for k, name in enumerate(names)
        if (suite_of == k).any()
    }


def item_cutoffs(
    suite_of: I64Array, names: Sequence[str], calibration: dict[str, SuiteCalibration]
) -> F32Array:
    """Each item's threshold; +inf for the items of a suite the check is off for."""
    per_suite = np.array(
        [
            c.threshold if (c := calibration.get(name)) is not None and c.threshold is not None
            else np.inf
            for name in names
        ],
        dtype=np.float32,
    )  # fmt: skip
    cut: F32Array = per_suite[suite_of] if len(names) else np.zeros(0, dtype=np.float32)
    return cut
