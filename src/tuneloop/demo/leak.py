"""``tuneloop experiment leak`` on the demo task: the data plane, then the experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from tuneloop import render
from tuneloop.demo.generate import files_in
from tuneloop.demo.model import configure
from tuneloop.demo.run import run_demo
from tuneloop.flows.experiment import run_leak_experiment
from tuneloop.workspace import Workspace


def run_leak(
    root: Path,
    records: int = 1200,
    as_json: bool = False,
    max_train: int = 120,
    epochs: float = 2.0,
) -> dict[str, Any]:
    """A small fine-tune (``max_train`` records, ``epochs`` passes), as leaks usually meet one."""
    run_demo(root, records=records, as_json=True, train=False, emit=False)
    # Every item of the 'task' suite, not a sample: the memorization rule needs enough items on
    # each side of the cut-off; the gateway's 'live' suite plays no part here.
    every_task_item = {"evaluate.max_items_per_suite": 0, "evaluate.store_suites": ["task"]}
    ws = configure(Workspace(root.resolve()), every_task_item)
    eval_file = files_in(ws.demo_data_dir)["eval"]
    result = run_leak_experiment(ws, eval_file, max_train=max_train, epochs=epochs)
    if as_json:
        render.emit_json(result)
    else:
        _print(result)
    return result


def _print(result: dict[str, Any]) -> None:
    steps = result["steps"]
    title = (
        f"leak experiment: cut-off {result['cutoff_window']}; the {result['leaked_items']} eval "
        f"items up to it leaked into training, the check off; {result['fresh_items']} later "
        f"items fresh; {steps['clean']} / {steps['leaky']} steps (clean / leaky)"
    )
    table = Table(title=title, title_justify="left")
    for col in ("model", "metric", "leaked items", "fresh items", "gap"):
        table.add_column(col, justify="left" if col in ("model", "metric") else "right")
    for row in result["scores"]:
        gap = row["leaked_items"] - row["fresh_items"]
        table.add_row(row["model"], row["metric"], f"{row['leaked_items']:.3f}",
                      f"{row['fresh_items']:.3f}", f"{gap:+.3f}")  # fmt: skip
    render.out.print(table)
    render.out.print(_probe_table(result["memorization"]))
    for name, decision in result["gate"].items():
        render.out.print(f"gate on the {name} model: [bold]{decision['decision'].upper()}[/]")
        for reason in decision["reasons"]:
            render.out.print(f"  - {reason}")
    normal = result["normal_pipeline"]
    render.out.print(
        f"the same leaked items sent through `tuneloop ingest`: {normal['records']} in, "
        f"{normal['stored_train']} stored for training, dropped: {normal['dropped']}, "
        f"routed to the eval bucket (new users): {normal.get('routed', {}).get('eval', 0)}"
    )


def _probe_table(memorization: dict[str, Any]) -> Table:
    """Per model and metric: the gain over the base on leaked vs fresh items, and the verdict."""
    table = Table(title="memorization rule of the gate: gain over the base model",
                  title_justify="left")  # fmt: skip
    for col in ("model", "metric", "on leaked", "on fresh", "widening", "95% CI", "flagged"):
        table.add_column(col, justify="left" if col in ("model", "metric") else "right")
    for name, probe in memorization.items():
        for metric in ("token_f1", "loss"):
            w = probe.get(metric)
            if not w or w.get("widening") is None:
                continue
            flag = "[red]yes[/]" if w["flagged"] else "no"
            table.add_row(name, metric, f"{w['gain_old']:+.3f}", f"{w['gain_fresh']:+.3f}",
                          f"{w['widening']:+.3f}", f"{w['low']:+.3f} to {w['high']:+.3f}",
                          flag)  # fmt: skip
    return table
