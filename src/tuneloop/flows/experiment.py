"""``tuneloop experiment leak``: what a leaked eval set does, measured.

The eval items are split at a cut-off week: items up to it are "old", later ones "fresh". The
same model is trained twice on (a sample of) the curated data collected up to the cut-off, for
the same number of passes: once as it is (clean), once with every old eval item added and the
contamination check turned off (leaky).
Both are scored on the leaked (old) items and on the fresh ones. A leak shows as a gap: the
leaky model looks much better on the items it saw, not on fresh ones. The gate is asked about
both models: its certificate re-verification and its memorization rule (the gain over the base
model on old vs fresh items) should refuse the leaky one only. Then the leaked items are sent
through the normal pipeline to show the check dropping them.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from tuneloop.curate.base import DropLog
from tuneloop.datasets import DatasetStore
from tuneloop.errors import InputError
from tuneloop.evalside.report import EvalReport, SuiteResult
from tuneloop.evalside.store import iso_week_window
from tuneloop.evalside.suites import spread
from tuneloop.flows.gate import run_gate
from tuneloop.flows.ingest import ingest_file
from tuneloop.flows.train import train
from tuneloop.records import record_from_obj
from tuneloop.workspace import Workspace


def split_at_cutoff(eval_file: Path) -> tuple[str, list[dict[str, Any]], list[str]]:
    """(cut-off week, the old items to leak, the ids of the fresh items).

    The cut-off is the median week of the dated eval items, so that both sides hold about half.
    """
    items = [json.loads(x) for x in eval_file.read_text(encoding="utf-8").splitlines() if x]
    weeks = {o["id"]: iso_week_window(o.get("created_at")) for o in items}
    dated = sorted(w for w in weeks.values() if w)
    if not dated:
        fix = "the experiment splits the eval set by time: give the items timestamps"
        raise InputError(eval_file, None, "no eval item has a created_at", fix)
    cut = dated[(len(dated) - 1) // 2]
    if cut == dated[-1]:
        problem = f"every dated eval item is in week {cut} or earlier"
        raise InputError(eval_file, None, problem, "spread the items over two weeks or more")
    leaked = [o for o in items if (w := weeks[o["id"]]) and w <= cut]
    fresh = [o["id"] for o in items if (w := weeks[o["id"]]) and w > cut]
    return cut, leaked, fresh


def until_cutoff(ws: Workspace, dataset: str, cut: str, max_train: int | None) -> str:
    """The dataset's records collected up to week ``cut``, at most ``max_train`` of them for
    training (spread evenly over the dataset's order); each record left out is a drop row with
    its reason."""
    store = DatasetStore(ws.datasets_dir)
    kept, log = [], DropLog()
    for rec in store.load(dataset):
        week = iso_week_window(rec.created_at)
        if week is not None and week > cut:
            log.drop(rec, "experiment", "after_cutoff")
        else:
            kept.append(rec)
    train = [r for r in kept if r.meta.get("split", "train") == "train"]
    if max_train is not None and len(train) > max_train:
        chosen = {train[i].id for i in spread(len(train), max_train)}
        for rec in (r for r in train if r.id not in chosen):
            log.drop(rec, "experiment", "beyond_sample")
        kept = [r for r in kept if r.id in chosen or r.meta.get("split", "train") != "train"]
    manifest = store.show(dataset)
    version = store.create(
        kept, parent=dataset, inputs={"dataset": dataset, "cutoff_window": cut,
                                      "max_train": max_train},
        blocks=manifest["blocks"], drop_rows=log.rows,
        certificate=manifest["contamination_certificate"],
    )  # fmt: skip
    return version.version


def _steps_for(ws: Workspace, dataset: str, epochs: float) -> int:
    """Optimizer steps for about ``epochs`` passes (a packed row holds about one record here)."""
    cfg = ws.config.train
    n = len(DatasetStore(ws.datasets_dir).load(dataset, split="train"))
    return max(1, math.ceil(epochs * n / (cfg.micro_batch * cfg.grad_accum)))


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


def run_leak_experiment(
    ws: Workspace,
    eval_file: Path,
    suite: str = "task",
    max_train: int | None = None,
    epochs: float | None = None,
) -> dict[str, Any]:
    """Needs a workspace where ``eval_file`` was added as ``suite`` and a dataset was curated.

    ``max_train`` caps the clean training records (a small fine-tune); ``epochs`` sets the
    steps of each model to about that many passes over its own data (else ``train.max_steps``).
    """
    store = DatasetStore(ws.datasets_dir)
    curated = store.latest()
    if curated is None:
        raise ValueError("curate a dataset first")
    cut, leaked, fresh_ids = split_at_cutoff(eval_file)
    clean = until_cutoff(ws, curated, cut, max_train)
    leaky = leaky_dataset(ws, clean, leaked)
    datasets = {"clean": clean, "leaky": leaky}
    models = {
        name: train(ws, dataset=v, max_steps=_steps_for(ws, v, epochs) if epochs else None)
        for name, v in datasets.items()
    }
    gated = {name: run_gate(ws, str(m.version)) for name, m in models.items()}
    reports = {name: g.candidate for name, g in gated.items()}
    rows = _table(reports, suite, {o["id"] for o in leaked}, set(fresh_ids))
    again = ws.leaked_again_path
    again.write_text("".join(json.dumps({**o, "id": f"again-{k}", "user_id": f"leaker-{k}"}) + "\n"
                             for k, o in enumerate(leaked)))  # fmt: skip
    caught = ingest_file(ws, again)
    return {
        "cutoff_window": cut, "clean_dataset": clean,
        "steps": {name: m.result["steps"] for name, m in models.items()}, "leaky_dataset": leaky,
        "leaked_items": len(leaked), "fresh_items": len(fresh_ids), "scores": rows,
        "gate": {name: g.decision for name, g in gated.items()},
        "memorization": {name: _probe_summary(g.decision, suite) for name, g in gated.items()},
        "normal_pipeline": {"records": caught.records, "dropped": dict(caught.dropped),
                            "routed": dict(caught.routed),
                            "stored_train": caught.stored_train},
    }  # fmt: skip


def _probe_summary(decision: dict[str, Any], suite: str) -> dict[str, Any]:
    """The gate's memorization rule on one suite: its verdict and each metric's widening."""
    check = next((c for c in decision["checks"] if c["name"] == "memorization"), None)
    return {
        "passed": None if check is None else check["passed"],
        "detail": None if check is None else check["detail"],
        **decision.get("memorization", {}).get(suite, {}),
    }
