"""The leak experiment's training settings: SmolLM2 + LoRA, small enough for minutes on two
CPU cores (the demo's loop has its own, in ``loop.py``)."""

from __future__ import annotations

from tuneloop.workspace import Workspace

# Small enough for a few minutes on two CPU cores, big enough to move the metrics.
DEMO_TOML = """
[train]
max_steps = 30
micro_batch = 2
grad_accum = 2
lr = 1e-3
warmup_steps = 4
eval_every = 10
save_every = 10
block_size = 256
max_len = 256
replay_ratio = 0.0

[evaluate]
max_new_tokens = 64
batch_size = 12
max_items_per_suite = 24
forgetting_items = 12

[gate]
bootstrap_samples = 2000
"""
METRICS = ("token_f1", "rouge_l", "exact_match", "loss")


def configure(ws: Workspace) -> Workspace:
    text = ws.config_path.read_text(encoding="utf-8").split("[train]")[0] + DEMO_TOML
    ws.config_path.write_text(text, encoding="utf-8")
    return Workspace(ws.root)
