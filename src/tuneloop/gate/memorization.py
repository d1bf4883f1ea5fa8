"""The memorization rule: did the candidate gain more on eval items it could have seen?

The contamination check is the first defence; this rule catches what slipped past it. On each
task suite the items are split at the candidate's training cut-off
(:mod:`tuneloop.evalside.probe`): "old" items existed while its training data was collected,
"fresh" ones did not. Item by item, the candidate's gain over the incumbent is taken (so that
each item's difficulty cancels), and the mean gain on old items is compared with the mean gain
on fresh ones. Learning the task lifts both alike; training on leaked old items lifts only them.
The rule refuses when the bootstrap interval of that *widening* lies entirely above the policy's
bound, for token F1 or for the reference answer's loss.

The assumption, stated: old and fresh items are of the same kind. When the traffic itself
changed at the cut-off (a new product launched in the weeks the training data covers), a
candidate may honestly gain more on the old items; raise the bounds, or set them very high to
turn the rule off, after looking at which items drive the widening (the per-item scores are in
both reports).
"""

from __future__ import annotations

import math
from typing import Any

from tuneloop.evalside.probe import is_window, split_by_cutoff
from tuneloop.evalside.report import EvalReport, ItemScore, SuiteResult
from tuneloop.gate.policy import LOWER_IS_BETTER, GatePolicy
from tuneloop.gate.rules import Check
from tuneloop.gate.stats import bootstrap_gap

METRICS = ("token_f1", "loss")


def _gains(cand: SuiteResult, inc: SuiteResult, metric: str) -> dict[str, float]:
    """Candidate minus incumbent per item, signed so that positive means the candidate is better."""
    inc_by_id = {i.item_id: i for i in inc.items}
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    out = {}
    for item in cand.items:
        other = inc_by_id.get(item.item_id)
        c = item.metrics.get(metric)
        i = None if other is None else other.metrics.get(metric)
        if c is not None and i is not None and not (math.isnan(c) or math.isnan(i)):
            out[item.item_id] = sign * (c - i)
    return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _widening(
    old: list[ItemScore], fresh: list[ItemScore], gains: dict[str, float], policy: GatePolicy
) -> dict[str, Any]:
    g_old = [gains[i.item_id] for i in old if i.item_id in gains]
    g_fresh = [gains[i.item_id] for i in fresh if i.item_id in gains]
    r = bootstrap_gap(g_old, g_fresh, policy.bootstrap_samples, policy.confidence, policy.seed)
    return {
        "old_items": len(g_old),
        "fresh_items": len(g_fresh),
        "gain_old": _mean(g_old),
        "gain_fresh": _mean(g_fresh),
        "widening": None if math.isnan(r.delta_mean) else r.delta_mean,
        "low": None if math.isnan(r.low) else r.low,
        "high": None if math.isnan(r.high) else r.high,
    }


def probe_widening(
    candidate: EvalReport, incumbent: EvalReport, policy: GatePolicy
) -> dict[str, dict[str, Any]]:
    """Per task suite the candidate was probed on: the split, and each metric's widening."""
    bounds = {"token_f1": policy.memorization_f1_widening,
              "loss": policy.memorization_loss_widening}  # fmt: skip
    out: dict[str, dict[str, Any]] = {}
    for name, probe in sorted(candidate.memorization.items()):
        cutoff = probe.get("cutoff_window") if isinstance(probe, dict) else None
        cand, inc = candidate.suites.get(name), incumbent.suites.get(name)
        if not isinstance(cutoff, str) or not is_window(cutoff) or cand is None or inc is None:
            continue
        old, fresh, _ = split_by_cutoff(cand.items, cutoff)
        entry: dict[str, Any] = {"cutoff_window": cutoff}
        for metric in METRICS:
            w = _widening(old, fresh, _gains(cand, inc, metric), policy)
            judged = min(w["old_items"], w["fresh_items"]) >= policy.memorization_min_items
            w["threshold"] = bounds[metric]
            # The whole interval above the bound, not only the point: with two metrics and a
            # few dozen items, "point above the bound, interval above zero" refused ~10% of
            # candidates that had no real widening at all (tests/test_gate_memorization.py).
            w["flagged"] = bool(judged and w["low"] is not None and w["low"] > bounds[metric])
            w["judged"] = judged
            entry[metric] = w
        out[name] = entry
    return out


def check_memorization(
    widening: dict[str, dict[str, Any]], policy: GatePolicy, incumbent: str
) -> Check:
    """Refuse when a suite's gain widened on pre-cut-off items (see the module docstring)."""
    name = "memorization"
    level = f"{policy.confidence:.0%}"
    flagged: list[str] = []
    judged: list[str] = []
    skipped: list[str] = []
    for suite, entry in widening.items():
        for metric in METRICS:
            w = entry[metric]
            where = f"{metric} on {suite!r} (cut-off {entry['cutoff_window']})"
            if not w["judged"]:
                skipped.append(f"{where}: {w['old_items']} old / {w['fresh_items']} fresh items")
                continue
            sentence = (
                f"{where}: gain over {incumbent!r} {w['gain_old']:+.4f} on {w['old_items']} items "
                f"from before the cut-off vs {w['gain_fresh']:+.4f} on {w['fresh_items']} fresh "
                f"ones (widening {w['widening']:+.4f}, {level} CI {w['low']:+.4f} to "
                f"{w['high']:+.4f}, bound {w['threshold']:g})"
            )
            (flagged if w["flagged"] else judged).append(sentence)
    if flagged:
        return Check(
            name,
            False,
            "likely memorized eval items: " + "; ".join(flagged) + ": look for eval items in the "
            "training data (tuneloop decontaminate) and rebuild the dataset without them",
        )
    if judged:
        return Check(name, True, "no widening gain on pre-cut-off items: " + "; ".join(judged))
    why = "; ".join(skipped) if skipped else "no training cut-off or no dated task items"
    return Check(name, True, f"memorization not judged ({why})")
