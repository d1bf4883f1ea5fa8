"""The leak experiment's training settings: SmolLM2 + LoRA, small enough for minutes on two
CPU cores (the demo's loop has its own, in ``loop.py``)."""

from __future__ import annotations

from typing import Any

from tuneloop.workspace import Workspace

# Small enough for a few minutes on two CPU cores, big enough to move the metrics.
DEMO: dict[str, Any] = {
    "train.max_steps": 30,
    "train.micro_batch": 2,
    "train.grad_accum": 2,
    "train.lr": 1e-3,
    "train.warmup_steps": 4,
    "train.eval_every": 10,
    "train.save_every": 10,
    "train.block_size": 256,
    "train.max_len": 256,
    "train.replay_ratio": 0.0,
    "evaluate.max_new_tokens": 64,
    "evaluate.batch_size": 12,
    "evaluate.max_items_per_suite": 24,
    "evaluate.forgetting_items": 12,
    "gate.bootstrap_samples": 2000,
}
METRICS = ("token_f1", "rouge_l", "exact_match", "loss")


def configure(ws: Workspace, changes: dict[str, Any] | None = None) -> Workspace:
    """The experiment's settings (and ``changes`` over them) written into ``ws``."""
    return ws.configure(DEMO | (changes or {}))
