"""The demo's model plane: train SmolLM2 + LoRA on the curated dataset, evaluate it against
the base model on the same items, gate it, register and promote it — and show the numbers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.table import Table

from tuneloop import render
from tuneloop.flows.gate import run_gate
from tuneloop.flows.register import registry_for
from tuneloop.flows.train import train
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


def run_model_plane(ws: Workspace, say: Callable[[str], None]) -> dict[str, Any]:
    ws = configure(ws)
    report = train(ws, progress=None)
    r = report.result
    say(
        f"[bold]6. train[/] SmolLM2-135M-Instruct + LoRA: {r['steps']} steps in "
        f"{r['seconds']:.0f} s, best eval loss {r['best_eval_loss']:.3f} (step {r['best_step']})"
        f" → model version v{report.version}"
    )
    run = run_gate(ws, str(report.version), promote=True)
    say(
        f"[bold]7. evaluate[/] {run.incumbent.model} and candidate on the same items "
        "(task, forgetting, safety)"
    )
    decision = run.decision
    say(
        f"[bold]8. gate[/] {decision['decision'].upper()}"
        + ("; promoted to production" if decision.get("promoted") else "")
    )
    rows = _comparison(run.incumbent.suites, run.candidate.suites)
    aliases = {v.version: v.aliases for v in registry_for(ws).list()}
    return {"train": report.to_dict(), "comparison": rows, "gate": decision, "aliases": aliases}


def _comparison(base: dict[str, Any], cand: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, suite in cand.items():
        if name not in base:
            continue
        for metric in METRICS:
            before, after = base[name].mean(metric), suite.mean(metric)
            if before != before and after != after:  # NaN: metric not measured on this suite
                continue
            rows.append({"suite": f"{name} ({suite.kind})", "metric": metric,
                         "base": before, "candidate": after})  # fmt: skip
    return rows


def print_model_plane(out: dict[str, Any]) -> None:
    table = Table(title="before / after: base model vs fine-tuned candidate", title_justify="left")
    for col in ("suite", "metric", "base", "candidate", "change"):
        table.add_column(col, justify="left" if col in ("suite", "metric") else "right")
    for row in out["comparison"]:
        delta = row["candidate"] - row["base"]
        better = delta < 0 if row["metric"] == "loss" else delta > 0
        mark = "green" if better else ("red" if delta else "white")
        table.add_row(row["suite"], row["metric"], f"{row['base']:.3f}", f"{row['candidate']:.3f}",
                      f"[{mark}]{delta:+.3f}[/]")  # fmt: skip
    render.out.print(table)
    for reason in out["gate"]["reasons"]:
        render.out.print(f"  gate: {reason}")
