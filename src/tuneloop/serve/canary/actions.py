"""The canary's moves: start, judge-and-act, stop. Each one is an audit event in the registry.

The registry alias ``canary`` says which version is the canary (the server loads it); the
state file says at what weight and since when. A rollback clears the alias, sets the weight
to 0, records the verdict's numbers in the audit log and on the version itself; a promotion
moves ``production`` (the old one becomes ``previous``) and clears the canary.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from tuneloop.config import CanaryConfig
from tuneloop.errors import WorkspaceError
from tuneloop.registry import PRODUCTION, Registry
from tuneloop.registry.release import eligibility, require
from tuneloop.serve.canary.judge import Verdict
from tuneloop.state import canary as st


def production_of(registry: Registry) -> str:
    return registry.aliases().get(PRODUCTION, "base")


def start(
    serve_dir: Path,
    registry: Registry,
    version: str,
    weight: float,
    step: float,
    max_weight: float,
    index_version: str | None,
    force: str | None = None,
) -> st.CanaryState:
    """Begin (or restart, for a newer candidate) an analysis of ``version`` against production.

    The version must be eligible as a new release (gated on ``index_version``, the current
    eval index, and not tainted) unless ``force`` gives the reason to start it anyway."""
    target = require(registry, version, index_version, f"a canary of {version}", force).version
    baseline = production_of(registry)
    if target == baseline:
        raise WorkspaceError(f"v{target} is production already; pick a candidate version")

    def change(current: st.CanaryState | None) -> st.CanaryState:
        if current and current.running:
            registry.record_event(
                "canary_replaced", version=current.version, by=target, canary_id=current.canary_id
            )
        return st.new_state(target, baseline, weight, step, max_weight)

    new = st.update(serve_dir, change)
    assert new is not None
    registry.set_canary(target)
    registry.record_event(
        "canary_start",
        version=target,
        baseline=baseline,
        weight=new.weight,
        step=step,
        max_weight=new.max_weight,
        canary_id=new.canary_id,
    )
    return new


def stop(serve_dir: Path, registry: Registry, reason: str = "stopped by hand") -> st.CanaryState:
    def change(current: st.CanaryState | None) -> st.CanaryState:
        if current is None or not current.running:
            raise WorkspaceError("no canary is running; start one with `tuneloop canary start V`")
        return current.with_event("stop", status="stopped", weight=0.0, ended_reason=reason)

    new = st.update(serve_dir, change)
    assert new is not None
    registry.clear_canary()
    registry.record_event(
        "canary_stop", version=new.version, canary_id=new.canary_id, reason=reason
    )
    return new


def act(
    serve_dir: Path, registry: Registry, canary_id: str, verdict: Verdict, cfg: CanaryConfig
) -> st.CanaryState | None:
    """Record one judgment of the analysis ``canary_id`` and do what it calls for."""
    current = st.read_state(serve_dir)
    if current is not None and current.running and current.canary_id == canary_id:
        found = eligibility(registry.get(current.version), None)
        if not found.ok:  # tainted during the analysis: it is never promoted
            return stop(serve_dir, registry, found.sentence())
    now = time.time()
    outcome: dict[str, str] = {}

    def change(current: st.CanaryState | None) -> st.CanaryState | None:
        if current is None or not current.running or current.canary_id != canary_id:
            return current  # stopped or replaced meanwhile: this verdict is stale
        s = replace(current, judgments=current.judgments + 1, last_verdict=verdict.to_dict())
        if verdict.decision == "fail":
            s = replace(s, failures=s.failures + 1)
            if s.failures >= cfg.failure_threshold:
                outcome["action"] = "rollback"
                reason = "; ".join(verdict.reasons)
                return s.with_event(
                    "rollback", status="rolled_back", weight=0.0, ended_reason=reason
                )
            return s
        if verdict.decision == "inconclusive":
            return s
        s = replace(s, failures=0)
        if now - s.weight_since_unix < cfg.interval_s:
            return s  # a full interval at each weight before the next move
        if s.weight >= s.max_weight:
            outcome["action"] = "promote"
            return s.with_event("promote", status="promoted", ended_reason="passed at max weight")
        outcome["action"] = "step"
        return s.with_event(
            "step", weight=min(s.max_weight, s.weight + s.step), weight_since_unix=now
        )

    new = st.update(serve_dir, change)
    if new is None or new.canary_id != canary_id:
        return new
    registry.record_event(
        "canary_verdict",
        version=new.version,
        canary_id=canary_id,
        decision=verdict.decision,
        weight=new.weight,
        reasons=verdict.reasons,
        metrics=[m.__dict__ for m in verdict.metrics],
    )
    action = outcome.get("action")
    if action == "rollback":
        registry.clear_canary()
        registry.set_canary_verdict(new.version, {"outcome": "rolled_back", **verdict.to_dict()})
        registry.record_event(
            "canary_rollback", version=new.version, canary_id=canary_id, reasons=verdict.reasons
        )
    elif action == "promote":
        registry.promote(new.version)
        registry.clear_canary()
        registry.set_canary_verdict(new.version, {"outcome": "promoted", **verdict.to_dict()})
        registry.record_event("canary_promote", version=new.version, canary_id=canary_id)
    elif action == "step":
        registry.record_event(
            "canary_step", version=new.version, canary_id=canary_id, weight=new.weight
        )
    return new


def restart_for_new_baseline(
    serve_dir: Path, registry: Registry, canary_id: str, baseline: str
) -> st.CanaryState | None:
    """Production moved under a running canary: the comparison starts over at the first weight."""

    def change(current: st.CanaryState | None) -> st.CanaryState | None:
        if current is None or not current.running or current.canary_id != canary_id:
            return current
        fresh = st.new_state(
            current.version, baseline, current.initial_weight, current.step, current.max_weight
        )
        return replace(fresh, history=[*current.history, *fresh.history][-200:])

    new = st.update(serve_dir, change)
    if new is not None and new.canary_id != canary_id:
        registry.record_event(
            "canary_restart",
            version=new.version,
            baseline=baseline,
            old_canary_id=canary_id,
            canary_id=new.canary_id,
            reason="production moved during the analysis",
        )
    return new
