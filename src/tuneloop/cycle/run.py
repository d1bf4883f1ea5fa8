"""``tuneloop cycle``: run (or resume) one round of the loop, stage by stage.

The stages are the modules :mod:`tuneloop.cycle.stages` lists; where a cycle stands is its folder
(:mod:`tuneloop.state.cycle`). A cycle that was interrupted is resumed at its first unfinished
stage by the next ``tuneloop cycle``; a finished one is never run again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tuneloop import faults
from tuneloop.cycle.stages import STAGES, release, runner
from tuneloop.flows import retention
from tuneloop.state.cycle import Cycle, canary_outcome, cycle_lock, list_cycles, open_cycle
from tuneloop.workspace import Workspace

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def outcome_of(cycle: Cycle) -> tuple[str, str]:
    """(outcome, one line) of a cycle whose stages all finished."""
    report = cycle.report(release.NAME, release.Report)
    return report.outcome, report.summary


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
            name = stage.NAME
            if cycle.marker(name) is not None:
                continue
            faults.point(f"{name}:begin")
            start = time.perf_counter()
            report = runner(stage)(ws, cycle)
            faults.point(f"{name}:before_marker")
            seconds = time.perf_counter() - start
            cycle.mark(name, report, seconds)
            say(f"{name}: {report.summary} ({seconds:.1f} s)")
            if report.status != "done":
                cycle.finish(report.status, report.summary, stage=name)
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
