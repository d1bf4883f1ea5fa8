"""A cycle on disk: one folder per round, a marker per finished stage, written last.

    cycles/cycle-0003/
        cycle.json          when it started, what triggered it
        collected/          the inbox files this cycle took (moved, not copied)
        ingest/             one report per ingested source
        stages/<stage>.json the stage's outputs, its one-line summary and its seconds
        end.json            the outcome; a cycle without it is unfinished and is resumed

A stage's marker is written (atomically) only after everything the stage does is durable, so a
process killed at any moment leaves either a marker, and the stage is skipped on the rerun, or
no marker, and the stage runs again; every stage is written so that running it again after a
crash reaches the state one uninterrupted run would have reached (see ``cycle/stages/``).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from tuneloop.errors import WorkspaceError
from tuneloop.jsonl import read_json, write_json
from tuneloop.registry import Registry
from tuneloop.state.canary import read_state
from tuneloop.workspace import Workspace

STAGES = ("collect", "ingest", "curate", "train", "gate", "release")
PREFIX = "cycle-"
# A cycle's folder, as the module docstring draws it.
CYCLE_FILE = "cycle.json"
COLLECTED = "collected"
INGESTED = "ingest"
MARKERS = "stages"
END_FILE = "end.json"
Status = Literal["done", "stopped", "refused", "inconclusive"]


class StageReport(BaseModel):
    """What a stage did: each stage's module extends it with its typed outputs (a later stage's
    inputs), stored in the stage's marker and read back as the same type. ``stopped``
    (nothing to do), ``refused`` (the gate said no) and ``inconclusive`` (the gate's sample
    could not decide: the release waits) end the cycle cleanly, with the reason in
    ``summary``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Status = "done"
    summary: str = ""

    def outputs(self) -> dict[str, Any]:
        """The stage's outputs as its marker keeps them (plain JSON)."""
        found: dict[str, Any] = self.model_dump(mode="json", exclude={"status", "summary"})
        return found


Report = TypeVar("Report", bound=StageReport)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class CycleBusyError(WorkspaceError):
    """Another process is running a cycle in this workspace."""


@contextmanager
def cycle_lock(ws: Workspace) -> Iterator[None]:
    """One cycle at a time per workspace; a second process is told who holds the lock."""
    path = ws.cycle_lock_path
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise CycleBusyError(
                f"a cycle is already running in {ws.root} ({holder}); wait for it to finish"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {now_iso()}")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


class Cycle:
    """One round of the loop, as its folder says it stands."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.id = folder.name

    @classmethod
    def of(cls, ws: Workspace, cycle_id: str) -> Cycle:
        """The cycle ``cycle_id`` of ``ws`` (``cycle-0003``)."""
        return cls(ws.cycles_dir / cycle_id)

    @property
    def meta(self) -> dict[str, Any]:
        found: dict[str, Any] = read_json(self.folder / CYCLE_FILE)
        return found

    @property
    def collected_dir(self) -> Path:
        return self.folder / COLLECTED

    @property
    def ingest_dir(self) -> Path:
        return self.folder / INGESTED

    def _marker_path(self, stage: str) -> Path:
        return self.folder / MARKERS / f"{stage}.json"

    def marker(self, stage: str) -> dict[str, Any] | None:
        path = self._marker_path(stage)
        if not path.is_file():
            return None
        found: dict[str, Any] = read_json(path)
        return found

    def outputs(self, stage: str) -> dict[str, Any]:
        """A finished stage's outputs as stored JSON (for readers below the cycle layer, such
        as the report; the stages read :meth:`report`)."""
        found = self.marker(stage)
        if found is None:
            raise WorkspaceError(f"{self.id}: stage {stage} has not finished")
        outputs: dict[str, Any] = found["outputs"]
        return outputs

    def report(self, stage: str, kind: type[Report]) -> Report:
        """A finished stage's report, as the type its stage module declares."""
        found = self.marker(stage)
        if found is None:
            raise WorkspaceError(f"{self.id}: stage {stage} has not finished")
        body = {**found["outputs"], "status": found["status"], "summary": found["summary"]}
        return kind.model_validate(body)

    def mark(self, stage: str, report: StageReport, seconds: float) -> None:
        write_json(self._marker_path(stage), {
            "stage": stage, "status": report.status, "summary": report.summary,
            "outputs": report.outputs(), "seconds": round(seconds, 3), "finished_at": now_iso(),
        })  # fmt: skip

    @property
    def end(self) -> dict[str, Any] | None:
        path = self.folder / END_FILE
        if not path.is_file():
            return None
        found: dict[str, Any] = read_json(path)
        return found

    def finish(self, outcome: str, summary: str, **details: Any) -> dict[str, Any]:
        body = {"outcome": outcome, "summary": summary, "finished_at": now_iso(), **details}
        write_json(self.folder / END_FILE, body)
        return body

    def next_stage(self) -> str | None:
        return next((s for s in STAGES if self.marker(s) is None), None)

    def status(self) -> dict[str, Any]:
        """Where the cycle stands: each stage's state and seconds, and the outcome."""
        stages = []
        for stage in STAGES:
            found = self.marker(stage)
            if found is None:
                stages.append({"stage": stage, "status": "pending"})
            else:
                stages.append({k: found[k] for k in ("stage", "status", "summary", "seconds")})
        meta = self.meta
        return {
            "cycle": self.id, "started_at": meta["started_at"], "trigger": meta.get("trigger"),
            "stages": stages, "end": self.end,
        }  # fmt: skip


def list_cycles(ws: Workspace) -> list[Cycle]:
    """Every cycle, oldest first (folders without cycle.json were never started)."""
    root = ws.cycles_dir
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / CYCLE_FILE).is_file()]
    return [Cycle(p) for p in sorted(found)]


def open_cycle(ws: Workspace, trigger: dict[str, Any] | None) -> tuple[Cycle, bool]:
    """The unfinished cycle to resume, else a new one; True when resumed.

    The caller holds :func:`cycle_lock`, so numbering cannot race.
    """
    cycles = list_cycles(ws)
    if cycles and cycles[-1].end is None:
        return cycles[-1], True
    number = int(cycles[-1].id.removeprefix(PREFIX)) + 1 if cycles else 1
    folder = ws.cycles_dir / f"{PREFIX}{number:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / CYCLE_FILE, {
        "cycle": folder.name, "started_at": now_iso(), "started_unix": time.time(),
        "trigger": trigger or {"kind": "manual"},
    })  # fmt: skip
    return Cycle(folder), False


def canary_outcome(ws: Workspace, cycle_id: str) -> str:
    """running, promoted, rolled_back or stopped: the canary a cycle released, as it is now."""
    canary_id = Cycle.of(ws, cycle_id).outputs("release").get("canary_id")
    state = read_state(ws.serve_dir)
    if state is not None and state.canary_id == canary_id:
        return state.status
    for event in reversed(Registry.for_workspace(ws.root).audit()):
        if event.get("canary_id") == canary_id and event["action"] in ENDED:
            return ENDED[str(event["action"])]
    return "unknown"


ENDED = {"canary_promote": "promoted", "canary_rollback": "rolled_back",
         "canary_stop": "stopped", "canary_replaced": "replaced"}  # fmt: skip
