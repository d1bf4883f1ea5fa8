"""Choosing LSH bands and rows: recall first, then as few false candidates as possible.

Two sets with Jaccard ``s`` share at least one of ``b`` bands of ``r`` rows with probability
``1 - (1 - s**r)**b``. We pick the (b, r) with ``b * r <= num_perm`` whose probability at the
threshold is at least ``min_recall`` and whose expected false-candidate rate over similarities
below the threshold is smallest. Candidates are then verified exactly, so a false candidate
costs time only, while a missed band collision is a duplicate that slips through.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Banding:
    bands: int
    rows: int

    def collision_probability(self, s: float) -> float:
        return float(1.0 - (1.0 - s**self.rows) ** self.bands)


def _false_positive_area(b: int, r: int, threshold: float) -> float:
    s = np.linspace(0.0, threshold, 200, endpoint=False)
    return float(np.mean(1.0 - (1.0 - s**r) ** b) * threshold)


def choose_banding(num_perm: int, threshold: float, min_recall: float = 0.97) -> Banding:
    """The (bands, rows) that meet ``min_recall`` at ``threshold`` with fewest false candidates."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    best: tuple[float, Banding] | None = None
    for r in range(1, num_perm + 1):
        b = num_perm // r
        cand = Banding(b, r)
        if cand.collision_probability(threshold) < min_recall:
            continue
        area = _false_positive_area(b, r, threshold)
        if best is None or area < best[0]:
            best = (area, cand)
    if best is None:
        return Banding(num_perm, 1)
    return best[1]
