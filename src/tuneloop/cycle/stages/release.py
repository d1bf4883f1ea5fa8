"""release: a passing candidate becomes a canary (when a server is running) or production,
both idempotent; ``cycle.release = none`` leaves it a registered candidate."""

from __future__ import annotations

from typing import Literal

from tuneloop.cycle.stages import train
from tuneloop.flows.register import registry_for
from tuneloop.registry.release import promote
from tuneloop.serve.canary import actions
from tuneloop.state.canary import read_state
from tuneloop.state.cycle import Cycle, StageReport
from tuneloop.state.server_file import server_running
from tuneloop.workspace import Workspace

NAME = "release"


class Report(StageReport):
    outcome: Literal["candidate", "promoted", "canary"]
    version: str
    canary_id: str | None = None


def run(ws: Workspace, cycle: Cycle) -> Report:
    cfg = ws.config.cycle
    index = ws.index_version()
    version = str(cycle.report(train.NAME, train.Report).version)
    running = server_running(ws.serve_dir)
    mode = cfg.release if cfg.release != "auto" else ("canary" if running else "promote")
    registry = registry_for(ws)
    if mode == "none":
        return Report(
            outcome="candidate",
            version=version,
            summary=f"v{version} stays a registered candidate (release = none)",
        )
    if mode == "promote":
        promote(registry, version, index)
        return Report(
            outcome="promoted", version=version, summary=f"v{version} promoted to production"
        )
    state = read_state(ws.serve_dir)
    if not (state and state.running and state.version == version):
        state = actions.start(
            ws.serve_dir,
            registry,
            version,
            cfg.canary_weight,
            cfg.canary_step,
            cfg.canary_max_weight,
            index,
        )
    where = "the server judges it" if running else "no server is running yet to judge it"
    return Report(
        outcome="canary",
        version=version,
        canary_id=state.canary_id,
        summary=f"v{version} is the canary at {state.weight:g}% of users ({where})",
    )
