"""The memorization probe: does a model do suspiciously better on eval items it could have seen?

Eval items whose ``window`` slice is at or before the training data's cut-off ("old") existed
while the training data was collected, so a leak the contamination check missed could have put
them into training; items from later windows ("fresh") could not have leaked. A model that
learned the task does about as well on both; a model that saw the old items scores better and
has a lower loss on them.

One model's gap (old − fresh) also holds how much harder one slice is than the other, so this
module gives the single-model gap (in every report) and the split that the gate uses to compare
the gap with the incumbent's on the same items (:mod:`tuneloop.gate.memorization`): a gap that
*widens* from one model version to the next is the warning sign.

Windows are ISO-week labels like "2026-W47"; zero-padded, they compare correctly as strings.
Items without such a label are counted as ``unknown_window`` and left out. Pure functions of
scores: nothing here reads evaluation text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from tuneloop.errors import TuneloopError
from tuneloop.evalside.report import ItemScore, SuiteResult

F1_GAP_THRESHOLD = 0.1
LOSS_GAP_THRESHOLD = 0.5
_WINDOW = re.compile(r"^\d{4}-W\d{2}$")


def is_window(label: str) -> bool:
    """An ISO-week label such as '2026-W47'."""
    return bool(_WINDOW.match(label))


def split_by_cutoff(
    items: Sequence[ItemScore], cutoff_window: str
) -> tuple[list[ItemScore], list[ItemScore], int]:
    """(old items, fresh items, count of items without a week label)."""
    if not is_window(cutoff_window):
        raise TuneloopError(f"cutoff window {cutoff_window!r} is not an ISO week like '2026-W47'")
    dated = [i for i in items if is_window(i.slices.get("window", ""))]
    old = [i for i in dated if i.slices["window"] <= cutoff_window]
    fresh = [i for i in dated if i.slices["window"] > cutoff_window]
    return old, fresh, len(items) - len(dated)


def _mean(items: Sequence[ItemScore], metric: str) -> float | None:
    values = [v for i in items if (v := i.metrics.get(metric)) is not None and not math.isnan(v)]
    return sum(values) / len(values) if values else None


def _gap(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def memorization_probe(
    task: SuiteResult,
    cutoff_window: str,
    f1_threshold: float = F1_GAP_THRESHOLD,
    loss_threshold: float = LOSS_GAP_THRESHOLD,
) -> dict[str, Any]:
    """One model's old-vs-fresh gap on a task suite, flagged when it is large on its own.

    Flagged when the token-F1 gap (old − fresh) exceeds ``f1_threshold`` or the loss gap
    (fresh − old) exceeds ``loss_threshold``. These absolute bounds catch only a blatant leak;
    the gate's comparison with the incumbent on the same items is the sensitive test.
    """
    old, fresh, unknown = split_by_cutoff(task.items, cutoff_window)
    f1_old, f1_fresh = _mean(old, "token_f1"), _mean(fresh, "token_f1")
    loss_old, loss_fresh = _mean(old, "loss"), _mean(fresh, "loss")
    f1_gap, loss_gap = _gap(f1_old, f1_fresh), _gap(loss_fresh, loss_old)
    flagged = (f1_gap is not None and f1_gap > f1_threshold) or (
        loss_gap is not None and loss_gap > loss_threshold
    )
    return {
        "suite": task.name,
        "cutoff_window": cutoff_window,
        "old_items": len(old),
        "fresh_items": len(fresh),
        "unknown_window": unknown,
        "token_f1_old": f1_old,
        "token_f1_fresh": f1_fresh,
        "token_f1_gap": f1_gap,
        "loss_old": loss_old,
        "loss_fresh": loss_fresh,
        "loss_gap": loss_gap,
        "f1_threshold": f1_threshold,
        "loss_threshold": loss_threshold,
        "flagged": bool(flagged),
    }
