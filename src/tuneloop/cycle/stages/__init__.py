"""The stages of one cycle, in order; each is one module with a typed ``Report`` and
``run(ws, cycle) -> Report``, safe to run again after a crash at any point.

collect  inbox files are moved (rename: atomic) into the cycle's folder; the serving log is
         only looked at. Nothing new anywhere: the cycle stops here.
ingest   each collected file is ingested once: its sha256 becomes a training-store cursor,
         committed in the same transaction as its records, so a rerun skips a file whose
         commit happened and redoes one whose commit did not (same batch name, same rejects
         file). The serving log has its own cursors, committed the same way.
curate   a content-addressed dataset version: the same inputs give the same id, never a twin.
         No new training records since the last trained dataset: the cycle stops here.
train    the run folder is a hash of the job and resumes from its last checkpoint; a run
         registered before the crash is found again instead of registered twice.
gate     evaluation answers are cached, the decision is recorded on the version; a refusal
         ends the cycle.
release  a canary (when a server is running) or a promotion, both idempotent.

A stage's report is stored in its marker (:mod:`tuneloop.state.cycle`) and read back by later
stages as the same type: ``cycle.report("curate", curate.Report).dataset``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from tuneloop.cycle.stages import collect, curate, gate, ingest, release, train
from tuneloop.state.cycle import Cycle, StageReport
from tuneloop.workspace import Workspace

STAGES: tuple[ModuleType, ...] = (collect, ingest, curate, train, gate, release)


def runner(stage: ModuleType) -> Callable[[Workspace, Cycle], StageReport]:
    """The stage's ``run``, typed."""
    run: Callable[[Workspace, Cycle], StageReport] = stage.run
    return run
