"""The live-quality trigger: is production doing worse with users than it did before?

Production is compared with its own earlier record, not with another model: the responses the
current production version gave in the last ``quality_window_s`` against every response it gave
before that. The tests are the canary judge's (a one-sided two-proportion z-test on the
thumbs-down rate, a bootstrap on the mean rating), and as there, a difference must be both
significant and larger than its tolerance to count.
"""

from __future__ import annotations

from tuneloop.config import TriggerConfig
from tuneloop.cycle.checks import Check
from tuneloop.flows.register import registry_for
from tuneloop.serve.canary.judge import ArmSample, proportion_worse, rating_worse
from tuneloop.state.serving_log import ServingLog
from tuneloop.workspace import Workspace


def _production(ws: Workspace) -> str:
    return registry_for(ws).aliases().get("production", "base")


def production_quality(ws: Workspace, cfg: TriggerConfig, now: float) -> Check:
    version = _production(ws)
    log = ServingLog(ws.store("serving", "train"))
    try:
        rows = [dict(r) for r in log.production_rows(version, now)]
    finally:
        log.close()
    cut = now - cfg.quality_window_s
    recent = ArmSample.from_rows([r for r in rows if r["created_unix"] >= cut])
    before = ArmSample.from_rows([r for r in rows if r["created_unix"] < cut])
    name = "base" if version == "base" else f"v{version}"
    parts, fired = [], False
    numbers: dict[str, object] = {"production": name}
    for metric, result in (("thumbs_down", _thumbs(recent, before, cfg)),
                           ("rating", _rating(recent, before, cfg))):  # fmt: skip
        numbers[metric] = result
        parts.append(str(result["detail"]))
        fired = fired or bool(result["worse"])
    return Check("quality", fired, f"{name}: " + "; ".join(parts), numbers)


def _thumbs(recent: ArmSample, before: ArmSample, cfg: TriggerConfig) -> dict[str, object]:
    n_r, n_b = recent.thumbs_up + recent.thumbs_down, before.thumbs_up + before.thumbs_down
    if min(n_r, n_b) < cfg.quality_min_feedback:
        return {"worse": False, "detail": f"thumbs-down not judged ({n_r} recent and {n_b} "
                f"earlier thumbs, {cfg.quality_min_feedback} of each needed)"}  # fmt: skip
    rate_r, rate_b = recent.thumbs_down / n_r, before.thumbs_down / n_b
    p = proportion_worse(recent.thumbs_down, n_r, before.thumbs_down, n_b)
    worse = p < cfg.quality_alpha and rate_r - rate_b > cfg.quality_max_thumbs_down_increase
    detail = (f"thumbs-down {rate_r:.1%} of {n_r} recently vs {rate_b:.1%} of {n_b} before "
              f"(p = {p:.4f})")  # fmt: skip
    return {"worse": worse, "recent": rate_r, "before": rate_b, "p_value": p, "detail": detail}


def _rating(recent: ArmSample, before: ArmSample, cfg: TriggerConfig) -> dict[str, object]:
    n_r, n_b = len(recent.ratings), len(before.ratings)
    if min(n_r, n_b) < cfg.quality_min_feedback:
        return {"worse": False, "detail": f"rating not judged ({n_r} recent and {n_b} earlier "
                f"ratings, {cfg.quality_min_feedback} of each needed)"}  # fmt: skip
    mean_r, mean_b = sum(recent.ratings) / n_r, sum(before.ratings) / n_b
    p = rating_worse(recent.ratings, before.ratings)
    worse = p < cfg.quality_alpha and mean_b - mean_r > cfg.quality_max_rating_decrease
    detail = f"mean rating {mean_r:.2f} of {n_r} recently vs {mean_b:.2f} of {n_b} (p = {p:.4f})"
    return {"worse": worse, "recent": mean_r, "before": mean_b, "p_value": p, "detail": detail}
