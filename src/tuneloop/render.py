"""Human-readable output for the CLI (``--json`` prints the same data as JSON instead)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

# No emoji codes (":train:" is a split name here, not a picture); wide tables when piped.
out = Console(emoji=False, width=None if Console().is_terminal else 130)
err = Console(stderr=True, emoji=False)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@contextmanager
def working(message: str, quiet: bool) -> Iterator[None]:
    """A spinner on stderr while long work runs (only on a terminal, never with --json)."""
    if quiet or not err.is_terminal:
        yield
        return
    with err.status(message):
        yield


@contextmanager
def step_progress(
    title: str, total: int, quiet: bool
) -> Iterator[Callable[[dict[str, Any]], None] | None]:
    """A progress bar with loss and ETA on stderr (only on a terminal, never with --json)."""
    if quiet or not err.is_terminal:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("step {task.completed}/{task.total}  loss {task.fields[loss]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err) as bar:
        task = bar.add_task(title, total=total, loss="-")

        def update(info: dict[str, Any]) -> None:
            bar.update(task, completed=info["step"], loss=f"{info['loss']:.4f}")

        yield update


def counts_table(
    title: str, rows: Mapping[str, Any], key: str = "what", value: str = "count"
) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column(key)
    table.add_column(value, justify="right")
    for k, v in rows.items():
        table.add_row(str(k), str(v))
    out.print(table)


def blocks_table(blocks: list[dict[str, Any]]) -> None:
    table = Table(title="curation blocks", title_justify="left")
    for col in ("block", "in", "kept", "changed", "dropped (reason: count)"):
        table.add_column(
            col, justify="left" if col in ("block", "dropped (reason: count)") else "right"
        )
    for b in blocks:
        dropped = ", ".join(f"{k}: {v}" for k, v in sorted(b["dropped"].items())) or "-"
        table.add_row(b["name"], str(b["seen"]), str(b["kept"]), str(b["changed"]), dropped)
    out.print(table)
