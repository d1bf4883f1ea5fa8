"""``tuneloop demo``: the data plane end to end on generated support traffic.

1. generate interactions with planted problems (PII, duplicates, eval leaks, bad feedback…);
2. ``evalset add`` the held-out eval set; 3. ``ingest`` the interactions through the gateway;
4. ``curate`` a dataset version; 5. verify the eval store's hash chain;
then show, for every kind of planted problem, where the pipeline caught it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from tuneloop import render
from tuneloop.contamination.semantic import available as paraphrase_check_installed
from tuneloop.cycle.run import run_cycle
from tuneloop.cycle.stages import curate as curate_stage
from tuneloop.cycle.stages import gate as gate_stage
from tuneloop.cycle.stages import ingest as ingest_stage
from tuneloop.cycle.triggers import run_if_due
from tuneloop.datasets import DatasetStore
from tuneloop.demo import loop
from tuneloop.demo.generate import GeneratedData, generate, write
from tuneloop.demo.outcomes import Outcomes, collect_outcomes, expected_stage
from tuneloop.errors import WorkspaceError
from tuneloop.flows.curate import curate
from tuneloop.flows.evalset import add_file, verify
from tuneloop.flows.ingest import ingest_file
from tuneloop.report.page import write_report
from tuneloop.state.cycle import Cycle
from tuneloop.workspace import Workspace, init_workspace

Say = Callable[[str], None]


def _fresh_workspace(root: Path, semantic: bool) -> Workspace:
    """The demo owns its folder: it is wiped only if an earlier demo created it."""
    if root.exists():
        if not Workspace(root).demo_marker_path.exists():
            raise WorkspaceError(f"{root} exists and is not a demo workspace; pick another folder")
        shutil.rmtree(root)
    ws = init_workspace(root, "demo")
    ws.demo_marker_path.write_text("created by `tuneloop demo`; safe to delete\n")
    # The bank's own name is written like a person's ("Hi Northwind, ..."): never redact it.
    settings: dict[str, object] = {"curate.pii_allow": ["Northwind"]}
    if semantic:
        settings["contamination.semantic"] = True
    return ws.configure(settings)


def run_demo(
    root: Path,
    records: int = 2000,
    seed: int = 0,
    as_json: bool = False,
    semantic: bool = False,
    train: bool = False,
    emit: bool = True,
    steps: int = loop.STEPS,
    items: int = loop.ITEMS,
) -> dict[str, Any]:
    """The data plane on generated traffic; with ``train``, two cycles of the loop with a
    server, a canary each and simulated users (see ``demo/loop.py``). ``semantic`` turns the
    embedding paraphrase check on (else it is "auto": on where its extra is installed)."""
    semantic = semantic and paraphrase_check_installed()
    ws = _fresh_workspace(root, semantic)
    data = generate(seed, max(20, records // 7), records, datetime(2026, 10, 1, tzinfo=UTC), 42)
    files = write(data, ws.demo_data_dir)

    def say(message: str) -> None:
        if not as_json:
            render.out.print(message)

    say(f"[bold]1. generated[/] {len(data.interactions)} interactions, {len(data.eval_items)} eval "
        f"items → {files['interactions'].parent}")  # fmt: skip
    added = add_file(ws, files["eval"], "task")
    say(f"[bold]2. evalset add[/] {len(added.accepted)} items in suite 'task'; index "
        f"{added.index_version[:12]}; {added.semantic_line or 'semantic check: off'}")  # fmt: skip
    if train:
        summary = run_loop(ws, data, files, say, as_json, steps, items)
    else:
        summary = _data_plane(ws, data, files, say, as_json)
    if as_json and emit:
        render.emit_json(summary)
    return summary


def _data_plane(
    ws: Workspace, data: GeneratedData, files: dict[str, Path], say: Say, as_json: bool
) -> dict[str, Any]:
    ingested = ingest_file(ws, files["interactions"])
    dropped = sum(ingested.dropped.values())
    say(
        f"[bold]3. ingest[/] {ingested.records} records: {ingested.stored_train} to the training "
        f"store, {ingested.stored_eval} to the eval bucket, {dropped} dropped"
    )
    curated = curate(ws)
    say(f"[bold]4. curate[/] dataset {curated.version}: {curated.train} train + "
        f"{curated.validation} validation")  # fmt: skip
    chain = verify(ws)
    say(f"[bold]5. evalset verify[/] hash chain of {chain.rows} rows: "
        f"{'intact' if chain.ok else 'BROKEN'}")  # fmt: skip
    outcomes = collect_outcomes(
        ws, data, ingested.rejects_file, DatasetStore(ws.datasets_dir), curated.version
    )
    if not as_json:
        _print(outcomes, curated.blocks)
    return {"ingest": ingested.to_dict(), "curate": curated.to_dict(), **outcomes.summary()}


def run_loop(
    ws: Workspace,
    data: GeneratedData,
    files: dict[str, Path],
    say: Say,
    as_json: bool,
    steps: int = loop.STEPS,
    items: int = loop.ITEMS,
) -> dict[str, Any]:
    """Two weekly cycles with a live server, canaries and simulated users; then the report."""
    ws = loop.configure(ws, steps, items)
    start = time.perf_counter()
    with loop.server(ws) as url:
        say(f"[bold]3. serving[/] {ws.config.train.base} at {url}/v1 (production: the base model)")
        inbox = ws.inbox_dir
        inbox.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(files["interactions"], inbox / "week1.jsonl")
        say("[bold]4. cycle 1[/]: week 1's traffic is in the inbox")
        first = run_cycle(ws, {"kind": "demo", "reason": "week 1 of traffic"}, _stages(say))
        outcomes = _week_one_outcomes(ws, data, first["cycle"], as_json)
        canary1 = loop.live_canary(ws, url, None, 11, say)
        week2 = loop.week_two(ws, data.eval_items, 700)
        say(
            f"[bold]5. cycle 2[/]: week 2 in the inbox ({week2['records']} records, "
            f"{week2['leak_attempts']} of them eval items pasted back); checking the triggers"
        )
        _, second = run_if_due(ws, _stages(say))
        leaks = loop.leak_fates(ws, second["cycle"]) if second else {}
        say(f"   the {week2['leak_attempts']} eval items pasted back: "
            + ", ".join(f"{k} {v}" for k, v in leaks.items()))  # fmt: skip
        canary2 = loop.live_canary(ws, url, loop.PEAK, 12, say) if second else {}
    chain = verify(ws)
    say(f"[bold]6. evalset verify[/] hash chain of {chain.rows} rows: "
        f"{'intact' if chain.ok else 'BROKEN'}")  # fmt: skip
    report = write_report(ws)
    cycles = [_cycle_summary(ws, s, c) for s, c in ((first, canary1), (second, canary2)) if s]
    if not as_json:
        for row in cycles:
            _print_cycle(row)
    seconds = time.perf_counter() - start
    say(f"[bold]report[/]: {report}   (the loop took {seconds / 60:.1f} min)")
    return {**outcomes.summary(), "cycles": cycles, "leak_attempt": leaks,
            "report": str(report), "seconds": round(seconds, 1)}  # fmt: skip


def _stages(say: Say) -> Say:
    return lambda line: say(f"   {line}")


def _week_one_outcomes(ws: Workspace, data: GeneratedData, cycle_id: str, as_json: bool) -> Any:
    cycle = Cycle.of(ws, cycle_id)
    rejects = cycle.report(ingest_stage.NAME, ingest_stage.Report).reports[0].get("rejects_file")
    version = cycle.report(curate_stage.NAME, curate_stage.Report).dataset
    store = DatasetStore(ws.datasets_dir)
    outcomes = collect_outcomes(ws, data, rejects, store, version)
    if not as_json:
        _print(outcomes, store.show(version)["blocks"])
    return outcomes


def _cycle_summary(ws: Workspace, status: dict[str, Any], canary: dict[str, Any]) -> dict[str, Any]:
    cycle = Cycle.of(ws, status["cycle"])
    gate = None
    if cycle.marker(gate_stage.NAME) is not None:
        gate = cycle.report(gate_stage.NAME, gate_stage.Report)
    ingest = cycle.report(ingest_stage.NAME, ingest_stage.Report)
    rows = []
    if gate is not None:
        rows = loop.comparison(ws, str(gate.incumbent), str(gate.candidate))
    return {"cycle": status["cycle"], "outcome": (status["end"] or {}).get("outcome"),
            "summary": (status["end"] or {}).get("summary"),
            "stages": {s["stage"]: s.get("seconds") for s in status["stages"]},
            "contamination": ingest.contamination,
            "gate": gate.outputs() if gate else None, "comparison": rows,
            "canary": canary}  # fmt: skip


def _print_cycle(row: dict[str, Any]) -> None:
    gate = row["gate"] or {}
    title = (
        f"{row['cycle']}: {gate.get('incumbent', '?')} → {gate.get('candidate', '?')} — "
        f"gate {gate.get('decision', '-')}, canary {row['canary'].get('outcome', '-')}"
    )
    table = Table(title=title, title_justify="left")
    for col in ("suite", "metric", "before", "after", "change"):
        table.add_column(col, justify="left" if col in ("suite", "metric") else "right")
    for r in row["comparison"]:
        delta = r["after"] - r["before"]
        better = delta < 0 if r["metric"] == "loss" else delta > 0
        mark = "green" if better else ("red" if delta else "white")
        table.add_row(r["suite"], r["metric"], f"{r['before']:.3f}", f"{r['after']:.3f}",
                      f"[{mark}]{delta:+.3f}[/]")  # fmt: skip
    for arm, live in sorted(row["canary"].get("arms", {}).items()):
        table.add_row("live users", f"thumbs-down ({arm})", "", f"{live['thumbs_down_rate']:.3f}",
                      f"{live['requests']} req")  # fmt: skip
    render.out.print(table)
    for reason in gate.get("reasons", [])[:8]:
        render.out.print(f"  gate: {reason}")
    if row["contamination"]:
        found = ", ".join(f"{k}: {v}" for k, v in row["contamination"].items())
        render.out.print(f"  contamination check dropped {found}")


def _print(outcomes: Outcomes, blocks: list[dict[str, Any]]) -> None:
    render.blocks_table(blocks)
    table = Table(title="what happened to every planted problem", title_justify="left")
    table.add_column("planted problem → where it should be caught")
    table.add_column("records", justify="right")
    table.add_column("routed to eval bucket", justify="right")
    table.add_column("caught there", justify="right")
    table.add_column("outcomes")
    for kind, row in outcomes.by_kind().items():
        expected = " or ".join(expected_stage(kind, outcomes.semantic))
        training_side = row["records"] - row["eval_bucket"]
        where = ", ".join(f"{k}: {v}" for k, v in row["outcomes"].most_common())
        table.add_row(
            f"{kind} → {expected}",
            str(row["records"]),
            str(row["eval_bucket"]),
            f"{row['caught']}/{training_side}",
            where,
        )
    render.out.print(table)
    acc = outcomes.accounting()
    render.out.print(
        f"every record accounted for: {acc['records']} in = {acc['train']} train + "
        f"{acc['validation']} validation + {acc['eval']} eval bucket + {acc['dropped']} dropped "
        f"(each with its reason in the rejects files) → {'yes' if acc['balanced'] else 'NO'}"
    )
