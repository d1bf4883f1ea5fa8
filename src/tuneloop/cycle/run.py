"""``tuneloop cycle``: run (or resume) one round of the loop, stage by stage.

The stages are in :mod:`tuneloop.cycle.stages`; where a cycle stands is its folder
(:mod:`tuneloop.state.cycle`). A cycle that was interrupted is resumed at its first unfinished
stage by the next ``tuneloop cycle``; a finished one is never run again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tuneloop import faults
from tuneloop.cycle.stages import RUNNERS
from tuneloop.flows import retention
from tuneloop.state.cycle import STAGES, Cycle, canary_outcome, cycle_lock, list_cycles, open_cycle
from tuneloop.workspace import Workspace

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def outcome_of(cycle: Cycle) -> tuple[str, str]:
    """(outcome, one line) of a cycle whose stages all finished."""
    release = cycle.outputs("release")
    marker = cycle.marker("release")
    return str(release["outcome"]), str(marker["summary"] if marker else "")


def run_cycle(
    ws: Workspace, trigger: dict[str, Any] | None = None, say: Say = _quiet
) -> dict[str, Any]:
    """Run the current cycle to its end (a new one when the last one ended); its status."""
    ws.config  # noqa: B018 - a bad tuneloop.toml is reported before anything moves
    with cycle_lock(ws):
        cycle, resumed = open_cycle(ws, trigger)
        if resumed:
            say(f"resuming {cycle.id} at stage {cycle.next_stage()}")
        else:
            say(f"{cycle.id} started ({(trigger or {}).get('reason', 'by hand')})")
        expired = retention.apply(ws)
        if expired.removed:
            say(expired.summary())
        for stage in STAGES:
            if cycle.marker(stage) is not None:
                continue
            faults.point(f"{stage}:begin")
            start = time.perf_counter()
            result = RUNNERS[stage](ws, cycle)
            faults.point(f"{stage}:before_marker")
            seconds = time.perf_counter() - start
            cycle.mark(stage, result, seconds)
            say(f"{stage}: {result.summary} ({seconds:.1f} s)")
            if result.status != "done":
                cycle.finish(result.status, result.summary, stage=stage)
                return cycle.status()
        if cycle.end is None:
            outcome, summary = outcome_of(cycle)
            cycle.finish(outcome, summary, stage="release")
        return cycle.status()


def statuses(ws: Workspace, last: int | None = None) -> list[dict[str, Any]]:
    """Every cycle's status, oldest first (the ``last`` N only, when given); a cycle that
    released a canary says how the canary ended, or that it is still running."""
    cycles = list_cycles(ws)
    found = [c.status() for c in (cycles[-last:] if last else cycles)]
    for status in found:
        end = status["end"] or {}
        if end.get("outcome") == "canary":
            end["canary_now"] = canary_outcome(ws, status["cycle"])
    return found
