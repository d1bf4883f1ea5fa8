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


def now() -> str:
    """The time of day, for lines of long-running commands."""
    from datetime import datetime

    return datetime.now().astimezone().isoformat(timespec="seconds")


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


def canary_table(metrics: list[Any]) -> None:
    """The judge's metrics, production beside canary, with sample sizes and p-values."""
    table = Table(title="canary vs production", title_justify="left")
    for name, justify in (
        ("metric", "left"),
        ("production", "right"),
        ("canary", "right"),
        ("n prod / canary", "right"),
        ("p", "right"),
        ("status", "left"),
        ("detail", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for m in metrics:
        p = "-" if m.p_value is None else f"{m.p_value:.4f}"
        table.add_row(
            m.name,
            _num(m.production),
            _num(m.canary),
            f"{m.n_production} / {m.n_canary}",
            p,
            m.status,
            m.detail,
        )
    out.print(table)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


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


_SUMMARY_COLUMNS = {
    "token_f1": "token F1",
    "rouge_l": "ROUGE-L",
    "exact_match": "EM",
    "chrf": "chrF",
    "field_acc": "fields",
    "loss": "loss",
    "harmful_compliance": "harmful",
    "over_refusal": "over-refusal",
}


def eval_summary_table(title: str, summary: Mapping[str, Mapping[str, Any]]) -> None:
    """One row per suite, then one per time window and per source where those vary."""
    rows: list[tuple[str, str, Mapping[str, Any]]] = []
    for name, suite in summary.items():
        rows.append((f"{name} ({suite['kind']})", "all", suite["all"]))
        for key in ("window", "source"):
            rows += [("", f"{key} {value}", means) for value, means in suite.get(key, {}).items()]
    shown = [m for m in _SUMMARY_COLUMNS if any(r[2].get(m) is not None for r in rows)]
    table = Table(title=title, title_justify="left")
    for col in ("suite", "slice", "items", *(_SUMMARY_COLUMNS[m] for m in shown)):
        table.add_column(col, justify="left" if col in ("suite", "slice") else "right")
    for suite_cell, slice_cell, means in rows:
        cells = [_cell(means.get(m), m) for m in shown]
        table.add_row(suite_cell, slice_cell, str(means["items"]), *cells)
    out.print(table)


def _cell(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if metric in ("harmful_compliance", "over_refusal") else f"{value:.3f}"


def memorization_lines(probe: Mapping[str, Any]) -> None:
    """The report's memorization probe, one line per task suite."""
    for name, p in probe.items():
        if not isinstance(p, Mapping):
            out.print(f"memorization probe: {p}")
            continue
        gap = p.get("token_f1_gap")
        text = "n/a" if gap is None else f"{gap:+.3f}"
        out.print(
            f"memorization probe on {name!r}: cut-off {p['cutoff_window']}, {p['old_items']} old "
            f"/ {p['fresh_items']} fresh items, token F1 gap {text}"
            + (" [red]FLAGGED[/]" if p.get("flagged") else "")
        )
