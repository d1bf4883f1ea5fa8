"""train: a LoRA adapter on the curated dataset version; the run folder is a hash of the job
and resumes from its last checkpoint."""

from __future__ import annotations

from typing import Any

from tuneloop.cycle.stages import curate
from tuneloop.flows.train import train as run_training
from tuneloop.state.cycle import Cycle, StageReport
from tuneloop.workspace import Workspace

NAME = "train"


class Report(StageReport):
    version: str | None  # the registered candidate
    run_id: str
    adapter_sha256: str | None
    steps: int
    tokens: int
    train_seconds: float
    best_eval_loss: float | None
    best_step: int | None
    records: dict[str, int]  # the round's records: train, validation, rows
    rehearsal: dict[str, Any] | None = None


def run(ws: Workspace, cycle: Cycle) -> Report:
    dataset = cycle.report(curate.NAME, curate.Report).dataset
    done = run_training(ws, dataset=dataset, resume=True)
    r = done.result
    loss = r["best_eval_loss"]
    summary = (
        f"v{done.version}: {r['steps']} steps, {r['tokens']} tokens, best eval loss "
        f"{loss if loss is None else round(loss, 4)}"
    )
    return Report(
        summary=summary,
        version=done.version,
        run_id=done.run_id,
        adapter_sha256=done.adapter_sha256,
        steps=r["steps"],
        tokens=r["tokens"],
        train_seconds=r["seconds"],
        best_eval_loss=loss,
        best_step=r["best_step"],
        records=done.lineage["records"],
        rehearsal=done.lineage.get("rehearsal"),
    )
