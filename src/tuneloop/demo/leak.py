"""``tuneloop experiment leak`` on the demo task: the data plane, then the experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from tuneloop import render
from tuneloop.demo.model import configure
from tuneloop.demo.run import run_demo
from tuneloop.flows.experiment import run_leak_experiment
from tuneloop.workspace import Workspace


def run_leak(root: Path, records: int = 1200, as_json: bool = False) -> dict[str, Any]:
    run_demo(root, records=records, as_json=True, train=False, emit=False)
    ws = configure(Workspace(root.resolve()))
    result = run_leak_experiment(ws, ws.root / "demo-data" / "eval.jsonl")
    if as_json:
        render.emit_json(result)
    else:
        _print(result)
    return result


def _print(result: dict[str, Any]) -> None:
    table = Table(title=f"leak experiment: {result['leaked_items']} eval items leaked into "
                  "training, the check off", title_justify="left")  # fmt: skip
    for col in ("model", "metric", "leaked items", "fresh items", "gap"):
        table.add_column(col, justify="left" if col in ("model", "metric") else "right")
    for row in result["scores"]:
        gap = row["leaked_items"] - row["fresh_items"]
        table.add_row(row["model"], row["metric"], f"{row['leaked_items']:.3f}",
                      f"{row['fresh_items']:.3f}", f"{gap:+.3f}")  # fmt: skip
    render.out.print(table)
    render.out.print(f"gate on the leaky model: [bold]{result['gate']['decision'].upper()}[/]")
    for reason in result["gate"]["reasons"]:
        render.out.print(f"  - {reason}")
    probe = result["memorization_probe"]
    flagged = [name for name, p in probe.items() if isinstance(p, dict) and p.get("flagged")]
    render.out.print(
        f"memorization probe: {'flagged ' + ', '.join(flagged) if flagged else 'no flag'}"
    )
    normal = result["normal_pipeline"]
    render.out.print(
        f"the same leaked items sent through `tuneloop ingest`: {normal['records']} in, "
        f"{normal['stored_train']} stored for training, dropped: {normal['dropped']}, "
        f"routed to the eval bucket (new users): {normal.get('routed', {}).get('eval', 0)}"
    )
