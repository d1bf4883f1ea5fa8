"""``tuneloop experiment leak``: what a leaked eval set does, measured.

The same model is trained twice on the demo task: once on the curated (clean) dataset, once on
that dataset plus half of the eval items with the contamination check turned off. Both are
scored on the leaked half and on the untouched half of the eval set. A leak shows as a gap:
the leaky model looks much better on the items it saw, not on fresh ones. Then the gate and the
memorization probe are asked, and the leaked items are sent through the normal pipeline to
show the check dropping them.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from tuneloop.datasets import DatasetStore
from tuneloop.evalside.report import EvalReport, SuiteResult
from tuneloop.flows.evaluate import evaluate
from tuneloop.flows.gate import run_gate
from tuneloop.flows.ingest import ingest_file
from tuneloop.flows.train import train
from tuneloop.records import record_from_obj
from tuneloop.workspace import Workspace


def _leaked_split(ws: Workspace, eval_file: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every other eval item (in time order) is leaked; the rest stay fresh."""
    items = [json.loads(x) for x in eval_file.read_text(encoding="utf-8").splitlines() if x]
    items.sort(key=lambda o: (o.get("created_at") or "", o["id"]))
    leaked = items[::2]
    return leaked, [o["id"] for o in items[1::2]]


def leaky_dataset(ws: Workspace, clean: str, leaked: list[dict[str, Any]]) -> str:
    """The clean dataset plus the leaked items, with a certificate saying the check was off."""
    store = DatasetStore(ws.datasets_dir)
    records = store.load(clean)
    for k, obj in enumerate(leaked):
        rec = record_from_obj({**obj, "id": f"leak-{k}"}, "<leak>", k)
        records.append(replace(rec, meta={**rec.meta, "split": "train"}))
    manifest = store.show(clean)
    certificate = {"index_version": "", "disabled": True, "methods": [], "records_checked": 0}
    version = store.create(
        records, parent=clean, inputs={"clean_dataset": clean, "leaked_eval_items": len(leaked)},
        blocks=manifest["blocks"], drop_rows=[], certificate=certificate,
    )  # fmt: skip
    return version.version


def _slice_means(suite: SuiteResult, ids: set[str], metric: str) -> float:
    values = [i.metrics[metric] for i in suite.items if i.item_id in ids and metric in i.metrics]
    return sum(values) / len(values) if values else float("nan")


def _table(
    reports: dict[str, EvalReport], suite: str, leaked: set[str], fresh: set[str]
) -> list[dict[str, Any]]:
    rows = []
    for name, report in reports.items():
        s = report.suites[suite]
        for metric in ("token_f1", "rouge_l", "loss"):
            rows.append({"model": name, "metric": metric,
                         "leaked_items": _slice_means(s, leaked, metric),
                         "fresh_items": _slice_means(s, fresh, metric)})  # fmt: skip
    return rows


def run_leak_experiment(ws: Workspace, eval_file: Path, suite: str = "task") -> dict[str, Any]:
    """Needs a workspace where ``eval_file`` was added as ``suite`` and a dataset was curated."""
    store = DatasetStore(ws.datasets_dir)
    clean = store.latest()
    if clean is None:
        raise ValueError("curate a dataset first")
    leaked, fresh_ids = _leaked_split(ws, eval_file)
    clean_model = train(ws, dataset=clean)
    leaky = leaky_dataset(ws, clean, leaked)
    leaky_model = train(ws, dataset=leaky)
    gated = run_gate(ws, str(leaky_model.version))  # evaluates the leaky model on the way
    reports = {"clean": evaluate(ws, str(clean_model.version))[0], "leaky": gated.candidate}
    leaked_ids = {o["id"] for o in leaked}
    rows = _table(reports, suite, leaked_ids, set(fresh_ids))
    verdict = gated.decision
    probe = reports["leaky"].memorization
    again = ws.root / "leaked-again.jsonl"
    again.write_text("".join(json.dumps({**o, "id": f"again-{k}", "user_id": f"leaker-{k}"}) + "\n"
                             for k, o in enumerate(leaked)))  # fmt: skip
    caught = ingest_file(ws, again)
    return {
        "clean_dataset": clean, "leaky_dataset": leaky, "leaked_items": len(leaked),
        "fresh_items": len(fresh_ids), "scores": rows, "gate": verdict,
        "memorization_probe": probe,
        "normal_pipeline": {"records": caught.records, "dropped": dict(caught.dropped),
                            "routed": dict(caught.routed),
                            "stored_train": caught.stored_train},
    }  # fmt: skip
