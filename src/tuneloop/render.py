"""Human-readable output for the CLI (``--json`` prints the same data as JSON instead)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tuneloop import progress

# No emoji codes (":train:" is a split name here, not a picture); wide tables when piped.
out = Console(emoji=False, width=None if Console().is_terminal else 130)
err = Console(stderr=True, emoji=False)


def now() -> str:
    """The time of day, for lines of long-running commands."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def emit_json_line(data: Any) -> None:
    """One compact JSON object per line, for commands that go on (serve, watch): JSON Lines."""
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()


@contextmanager
def working(message: str, quiet: bool) -> Iterator[None]:
    """A spinner on stderr while long work runs (only on a terminal, never with --json)."""
    if quiet or not err.is_terminal:
        yield
        return
    with err.status(message):
        yield


class Bars:
    """Progress bars with an ETA on stderr, one per phase of long work (on a terminal)."""

    def __init__(self) -> None:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} {task.fields[unit]} {task.fields[extra]}"),
            TimeRemainingColumn(),
        )
        self.bars = Progress(*columns, console=err, transient=True)
        self.tasks: dict[str, Any] = {}

    def start(self, title: str, total: int | None, unit: str) -> progress.Advance:
        if not self.tasks:
            self.bars.start()
        task = self.tasks[title] = self.bars.add_task(title, total=total, unit=unit, extra="")

        def advance(n: int = 1, **fields: object) -> None:
            self.bars.update(task, advance=n)
            if fields:
                self.bars.update(task, extra="  ".join(f"{k} {v}" for k, v in fields.items()))

        return advance

    def end(self, title: str, failed: bool = False) -> None:
        del failed  # a stopped bar just goes; the error that follows says why
        task = self.tasks.pop(title, None)
        if task is not None:
            self.bars.remove_task(task)
        if not self.tasks:
            self.bars.stop()


def display() -> progress.Display | None:
    """Bars on a terminal, plain lines on stderr otherwise (TUNELOOP_PROGRESS=0: none)."""
    if err.is_terminal and progress.enabled():
        return Bars()
    return progress.default_display(err.is_terminal, quiet=False)


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
    "toxicity": "toxicity",
}


_SAFETY_COLUMNS = ("harmful_compliance", "over_refusal", "toxicity")


def eval_summary_table(title: str, summary: Mapping[str, Mapping[str, Any]]) -> None:
    """Two tables, each one row per suite, then one per time window, source and category where
    those vary: the task and forgetting suites' metrics, then the safety and toxicity suites'
    rates (with their 95% intervals), so that neither is too wide for a terminal."""
    safety = {n: s for n, s in summary.items() if s["kind"] in ("safety", "toxicity")}
    quality = {n: s for n, s in summary.items() if n not in safety}
    columns = [m for m in _SUMMARY_COLUMNS if m not in _SAFETY_COLUMNS]
    for part, heading, wanted in ((quality, title, columns), (safety, "safety", _SAFETY_COLUMNS)):
        if part:
            _summary_table(heading, part, wanted)


def _summary_table(
    title: str, summary: Mapping[str, Mapping[str, Any]], columns: Sequence[str]
) -> None:
    rows: list[tuple[str, str, Mapping[str, Any]]] = []
    for name, suite in summary.items():
        rows.append((f"{name} ({suite['kind']})", "all", suite["all"]))
        for key in ("window", "source", "category"):
            rows += [("", f"{key} {value}", means) for value, means in suite.get(key, {}).items()]
    shown = [m for m in columns if any(r[2].get(m) is not None for r in rows)]
    table = Table(title=title, title_justify="left")
    for col in ("suite", "slice", "items", *(_SUMMARY_COLUMNS[m] for m in shown)):
        table.add_column(col, justify="left" if col in ("suite", "slice") else "right")
    for suite_cell, slice_cell, means in rows:
        cells = [_cell(means.get(m), m, means.get(f"{m}_ci95")) for m in shown]
        table.add_row(suite_cell, slice_cell, str(means["items"]), *cells)
    out.print(table)


def _cell(value: float | None, metric: str, ci: Sequence[float] | None = None) -> str:
    if value is None:
        return "-"
    if metric not in ("harmful_compliance", "over_refusal"):
        return f"{value:.3f}"
    return f"{value:.1%}" + (f" [{ci[0]:.0%}–{ci[1]:.0%}]" if ci else "")


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


def manifest_lines(m: Mapping[str, Any]) -> None:
    """``datasets show`` for a person: what the version holds, where it came from, what it
    dropped and why, and the eval index it was certified against."""
    counts = m.get("counts", {})
    cert = m.get("contamination_certificate") or {}
    certified = "turned off" if cert.get("disabled") else str(cert.get("index_version", "-"))[:12]
    lines = [
        f"{m['version']} (created {m.get('created_at', '?')}, parent {m.get('parent') or '-'})",
        f"  records {counts.get('records', 0):,}: train {counts.get('train', 0):,}, "
        f"validation {counts.get('validation', 0):,}",
        "  by source: " + _pairs(counts.get("by_source", {})),
        "  dropped: " + _pairs(m.get("drops_by_reason", {})),
        f"  contamination certificate: eval index {certified}",
        "  blocks: " + " → ".join(b["name"] for b in m.get("blocks", [])),
        "  (every parameter: --json)",
    ]
    for line in lines:
        out.print(line, highlight=False, markup=False)


def diff_lines(v1: str, v2: str, d: Mapping[str, Any]) -> None:
    """``datasets diff`` for a person: counts of records added, removed and changed, the split
    sizes, and which block or input parameters changed (the ids themselves: --json)."""
    out.print(f"{v1} → {v2}", highlight=False, markup=False)
    for key in ("added", "removed", "changed"):
        out.print(f"  {key}: {len(d.get(key, [])):,} records", highlight=False)
    for split, sizes in sorted(d.get("splits", {}).items()):
        out.print(f"  {split}: {_pairs(sizes)}", highlight=False, markup=False)
    for key in ("blocks_changed", "inputs_changed"):
        for name, change in sorted(d.get(key, {}).items()):
            what = f"  {key.split('_')[0][:-1]} {name}: {_change(change)}"
            out.print(what, highlight=False, markup=False)


def _change(change: Mapping[str, Any]) -> str:
    """old → new, or for parameter tables only the parameters that moved."""
    old, new = change.get("old"), change.get("new")
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return f"{old} → {new}"
    moved = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return "; ".join(f"{k} {_short(old.get(k))} → {_short(new.get(k))}" for k in moved)


def _short(value: Any) -> str:
    text = str(value)
    return text[:12] + "…" if len(text) > 16 else text


def version_lines(v: Mapping[str, Any]) -> None:
    """``registry show`` for a person: aliases, base, dataset, gate decision and the adapter."""
    lin = v.get("lineage", {})
    gate = json.loads(lin["gate_decision"]) if lin.get("gate_decision") else {}
    lines = [
        f"v{v['version']} {', '.join(v.get('aliases', [])) or '(no alias)'}, "
        f"created {v.get('created_at')}",
        f"  base {lin.get('base_ref')} (sha256 {str(lin.get('base_sha256', ''))[:12]})",
        f"  dataset {lin.get('dataset_version')}, replay {lin.get('replay_version') or '-'}",
        f"  gate: {gate.get('decision', 'not gated')}",
        f"  adapter sha256 {str(v.get('adapter_sha256', ''))[:12]} ({v.get('source')})",
    ]
    if v.get("tainted"):
        lines.append(f"  tainted by erasure {v['tainted'].get('request_id')}")
    for line in [*lines, "  (the whole lineage: --json)"]:
        out.print(line, highlight=False, markup=False)


def _pairs(counts: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}"
                     for k, v in counts.items()) or "none"  # fmt: skip


def estimate_lines(e: Mapping[str, Any]) -> None:
    """``train --dry-run`` for a person."""
    total = float(e["estimated_seconds"])
    out.print(
        f"{e['steps']} steps of {e['rows_per_step']} rows x {e['tokens_per_row']} tokens on "
        f"{e['dataset_version']} ({e['train_rows']:,} rows): {e['seconds_per_step']:.1f} s per "
        f"step measured, {e['evaluations']} evaluations of {e['seconds_per_evaluation']:.1f} s: "
        f"about {_minutes(total)}; peak memory {e['peak_rss_bytes'] / 2**30:.1f} GiB",
        highlight=False, markup=False,
    )  # fmt: skip


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
