"""``tuneloop evalset add | verify | list``: the eval side's commands."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tuneloop.contamination.index import semantic_rule
from tuneloop.contamination.persist import read_calibration
from tuneloop.evalside.intake import AddReport, add_eval_items, load_or_rebuild
from tuneloop.evalside.store import EvalStore, VerifyResult
from tuneloop.gateway import time_window
from tuneloop.records import read_records
from tuneloop.trainstore import TrainStore
from tuneloop.workspace import Workspace


def add_file(
    ws: Workspace, path: Path, suite: str, columns: Mapping[str, str] | None = None
) -> AddReport:
    """Add the items of a JSONL (or CSV/TSV) file to ``suite``, refusing those found in
    training data."""
    size = ws.config.gateway.window
    rows = read_records(path, columns=columns)
    items = [(rec, time_window(rec.created_at, size)) for _, rec in rows]
    with TrainStore(ws.store("train", "eval")) as store:
        return add_eval_items(ws, items, suite, store.iter_records())


def verify(ws: Workspace) -> VerifyResult:
    with EvalStore(ws.store("eval", "eval")) as store:
        return store.verify()


def suites(ws: Workspace) -> dict[str, int]:
    with EvalStore(ws.store("eval", "eval")) as store:
        return store.suites()


def semantic_lines(ws: Workspace) -> list[str]:
    """One line per suite: its semantic threshold, or that the check is off for it (and why);
    a single line when the index holds no embeddings. Brings the index up to date first."""
    with EvalStore(ws.store("eval", "eval")) as store:
        load_or_rebuild(ws, store)  # as the evaluator: the one role that may rebuild it
    found = read_calibration(ws.index_dir)
    if found is None:
        return ["semantic check: off (no embeddings in the index; see `semantic` in tuneloop.toml)"]
    rule = semantic_rule(ws.config.contamination.index_settings())
    return [c.describe(suite, rule) for suite, c in sorted(found.items())]
