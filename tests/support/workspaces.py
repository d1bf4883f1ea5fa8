"""Workspaces for tests: ``tuneloop init``'s layout and settings, then the test's settings by
their dotted names (:meth:`Workspace.configure`), so that a misspelt or refused setting fails
the test where it is set instead of being silently ignored."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuneloop.flows.curate import curate
from tuneloop.flows.evalset import add_file
from tuneloop.flows.ingest import ingest_file
from tuneloop.workspace import Workspace, init_workspace

from support.data import chats, write_jsonl

TRAIN: dict[str, Any] = {  # a few seconds of training on the tiny model: four steps of short rows
    "train.max_steps": 4,
    "train.micro_batch": 2,
    "train.grad_accum": 1,
    "train.eval_every": 2,
    "train.save_every": 2,
    "train.max_len": 64,
    "train.block_size": 64,
    "train.lora_r": 4,
    "train.lora_alpha": 8,
    "train.replay_ratio": 0.5,
}
CYCLE: dict[str, Any] = {  # evaluation and gate at the same small size
    "evaluate.max_new_tokens": 4,
    "evaluate.batch_size": 4,
    "evaluate.max_items_per_suite": 4,
    "evaluate.forgetting_items": 4,
    "gate.bootstrap_samples": 200,
    "gate.require_improvement": False,
}


def make_workspace(root: Path, *overlays: Mapping[str, Any]) -> Workspace:
    """A new workspace at ``root`` with the overlays' settings, later ones winning."""
    ws = init_workspace(root)
    changes = {name: value for overlay in overlays for name, value in overlay.items()}
    return ws.configure(changes) if changes else ws


def training_workspace(root: Path, base: Path, *overlays: Mapping[str, Any]) -> Workspace:
    """A workspace that trains ``base`` at :data:`TRAIN`'s size, every group on the training
    side (no eval routing), then ``overlays``."""
    return make_workspace(
        root, TRAIN, {"train.base": str(base), "gateway.eval_fraction": 0.0}, *overlays
    )


def cycle_ws(folder: Path, base: Path, improve: bool) -> Workspace:
    """``folder``/ws: 24 chats curated into a dataset version, and a task suite of six items
    over two weeks (``folder``/eval.jsonl); ``improve``: whether the gate requires a gain."""
    ws = training_workspace(folder / "ws", base, CYCLE, {"gate.require_improvement": improve})
    evals = [{"id": f"e{i}", "prompt": f"what is the fee for wire {i} abroad", "completion": "10",
              "created_at": f"2026-10-{5 + 7 * (i // 3):02d}T12:00:00Z"}
             for i in range(6)]  # fmt: skip
    add_file(ws, write_jsonl(folder / "eval.jsonl", evals), "task")
    ingest_file(ws, write_jsonl(folder / "in.jsonl", chats("a", 24)))
    curate(ws)
    return ws


def loop_ws(root: Path, base: Path, inbox: list[dict[str, Any]] | None = None) -> Workspace:
    """A workspace for whole cycles on ``base``: a task suite of four items, a fifth of the
    groups routed to the eval side, and (optionally) one file in the inbox."""
    ws = training_workspace(root, base, CYCLE, {"gateway.eval_fraction": 0.2})
    evals = [{"id": f"e{i}", "prompt": f"what is the fee for wire {i} abroad", "completion": "10",
              "created_at": "2026-10-05T12:00:00Z"} for i in range(4)]  # fmt: skip
    add_file(ws, write_jsonl(root / "eval.jsonl", evals), "task")
    if inbox:
        write_jsonl(ws.root / "inbox" / "week1.jsonl", inbox)
    return ws
