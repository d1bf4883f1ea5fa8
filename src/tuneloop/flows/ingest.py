"""``tuneloop ingest``: interactions → gateway → eval bucket or contamination check → store.

Order matters. Eval-bound records pass the record-level curation blocks (clean, quality,
feedback, PII) and are added to the eval store first (after their own check
against the training data), so the contamination index already knows them when the
training-bound records of the same file are checked. Nothing is dropped silently: every record
that does not reach a store is written to a rejects file with its reason (and, for
contamination, the matched eval id, method and score).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tuneloop import faults
from tuneloop.contamination.check import Checker, strongest
from tuneloop.contamination.semantic import embedder_for
from tuneloop.curate.pipeline import record_blocks, redactor, run_pipeline
from tuneloop.errors import InputError
from tuneloop.evalside.intake import add_eval_items
from tuneloop.evalside.intake import load_or_rebuild as load_index_for
from tuneloop.evalside.store import EvalStore
from tuneloop.gateway import identity_keys, route
from tuneloop.jsonl import DEFAULT_MAX_LINE_BYTES, write_json, write_jsonl
from tuneloop.records import Record, Side, read_records
from tuneloop.trainstore import LateFeedback, TrainStore
from tuneloop.workspace import Workspace


@dataclass
class IngestReport:
    file: str
    batch: str
    records: int = 0
    routed: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    stored_train: int = 0
    stored_eval: int = 0
    eval_already_present: int = 0  # eval-bound records already in the eval store (a rerun)
    contamination: Counter[str] = field(default_factory=Counter)
    rejects_file: str | None = None
    index_version: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "batch": self.batch,
            "records": self.records,
            "routed": dict(self.routed),
            "dropped": dict(self.dropped),
            "stored": {"train": self.stored_train, "eval": self.stored_eval},
            "eval_already_present": self.eval_already_present,
            "contamination": dict(self.contamination),
            "rejects_file": self.rejects_file,
            "index_version": self.index_version,
            "seconds": self.seconds,
        }


@dataclass
class _Plan:
    train: list[Record] = field(default_factory=list)
    eval: list[tuple[Record, str | None]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    sides: dict[str, Side] = field(default_factory=dict)


def _reject(plan: _Plan, record: Record, stage: str, reason: str, **details: Any) -> None:
    plan.rejects.append(
        {"id": record.id, "stage": stage, "reason": reason, **details, "record": record}
    )


def _redacted(ws: Workspace, rejects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rejects with the PII in their text redacted the way curation redacts it (a rejects
    file is kept, and read by people): sealed too when the workspace is encrypted. Ids and the
    grouping keys stay as they are, so that a rejected record can still be found and erased."""
    redact = redactor(record_blocks(ws.config.curate))
    return [
        {**row, "record": redact(found).to_dict()} if isinstance(found := row.get("record"), Record)
        else row  # dropped by the eval side's curation: redacted there already
        for row in rejects
    ]  # fmt: skip


def _route_all(ws: Workspace, records: list[Record], store: TrainStore) -> _Plan:
    cfg = ws.config.gateway
    known = store.known_sides()
    existing = store.existing_ids(r.id for r in records)
    plan, seen = _Plan(), set()
    for rec in records:
        if rec.id in existing or rec.id in seen:
            _reject(plan, rec, "gateway", "duplicate_id")
            continue
        seen.add(rec.id)
        decision = route(rec, cfg, {**known, **plan.sides})
        if decision.destination == "drop":
            _reject(plan, rec, "gateway", decision.reason or "dropped")
            continue
        side: Side = decision.destination
        for key in identity_keys(rec):
            plan.sides.setdefault(key, side)
        if side == "eval":
            plan.eval.append((rec, decision.window))
        else:
            plan.train.append(rec)
    return plan


def _curate_eval(ws: Workspace, plan: _Plan) -> None:
    """Eval-bound records pass the record blocks (clean, quality, feedback, PII) first."""
    windows = {rec.id: window for rec, window in plan.eval}
    result = run_pipeline(record_blocks(ws.config.curate), (rec for rec, _ in plan.eval))
    plan.rejects += [{"stage": "eval_curation", **row} for row in result.log.rows]
    plan.eval = [(rec, windows[rec.id]) for rec in result.records]


def _check_training(ws: Workspace, plan: _Plan, report: IngestReport) -> list[Record]:
    with EvalStore(ws.store("eval", "gateway")) as estore:
        index = load_index_for(ws, estore)
    report.index_version = index.version
    embedder = embedder_for(ws.config.contamination)
    checker = Checker(index, embedder)
    clean = []
    results = checker.check_records(plan.train)
    for rec, matches in zip(plan.train, results, strict=True):
        best = strongest(matches)
        if best is None:
            clean.append(rec)
            continue
        report.contamination[best.method] += 1
        _reject(plan, rec, "contamination", "contaminated", **best.evidence())
    return clean


@dataclass
class Extras:
    """What an incremental source commits with its records, in the same transaction.

    ``batch`` names the rejects file and the stored batch (default: the time): a caller that
    may run the same ingest again after a crash passes a stable one, so a rerun rewrites the
    same rejects file instead of adding a second. ``report_path`` receives the report just
    before the commit: after a crash that follows the commit, the report is already on disk.
    """

    feedback: list[LateFeedback] = field(default_factory=list)
    cursors: dict[str, int] = field(default_factory=dict)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    batch: str | None = None
    report_path: Path | None = None


def ingest_file(
    ws: Workspace,
    path: Path,
    max_line_bytes: int | None = None,
    extras: Extras | None = None,
    columns: Mapping[str, str] | None = None,
    skip_bad_lines: bool = False,
) -> IngestReport:
    """Route, check and store every record of ``path``; return what happened to each kind.

    Every line is read before anything is stored: a bad line refuses the file, or, with
    ``skip_bad_lines``, goes to the rejects file with its line number and reason."""
    limit = max_line_bytes or DEFAULT_MAX_LINE_BYTES
    bad: list[dict[str, Any]] | None = [] if skip_bad_lines else None
    records = [rec for _, rec in read_records(path, max_line_bytes=limit, columns=columns,
                                              bad=bad)]  # fmt: skip
    if not records:
        why = f"{len(bad)} unreadable lines, the first: {bad[0]['error']}" if bad else (
            "no records (only blank lines)")  # fmt: skip
        raise InputError(path, None, why, "pass a file with at least one readable record")
    extras = extras or Extras()
    extras.rejects += [
        {"id": None, "stage": "input", "reason": "bad_line", **row} for row in bad or []
    ]
    return ingest_records(ws, records, str(path), extras)


def ingest_records(
    ws: Workspace, records: list[Record], source: str, extras: Extras | None = None
) -> IngestReport:
    """Route, check and store ``records``; ``source`` names them in the report."""
    start = time.perf_counter()
    extras = extras or Extras()
    batch = extras.batch or datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    ws.config  # noqa: B018 - a bad tuneloop.toml is reported before any store is opened
    report = IngestReport(file=source, batch=batch, records=len(records))
    with TrainStore(ws.store("train", "gateway")) as store:
        plan = _route_all(ws, records, store)
        plan.rejects += extras.rejects
        report.routed.update(train=len(plan.train), eval=len(plan.eval))
        _curate_eval(ws, plan)
        if plan.eval:
            added = add_eval_items(
                ws, plan.eval, ws.config.gateway.eval_suite, store.iter_records(), "gateway"
            )
            by_id = {r.id: r for r, _ in plan.eval}
            for hit in added.refused:
                _reject(plan, by_id[str(hit["id"])], "eval_intake", "matches_training", **{
                    k: v for k, v in hit.items() if k != "id"})  # fmt: skip
            report.stored_eval = len(added.accepted)
            report.eval_already_present = len(added.already_present)
        faults.point("ingest:after_eval_append")
        clean = _check_training(ws, plan, report) if plan.train else []
        if plan.rejects:
            target = ws.rejects_dir / f"ingest-{batch}.jsonl"
            write_jsonl(target, _redacted(ws, plan.rejects), sealed=True)
            report.rejects_file = str(target)
        report.dropped.update(":".join(filter(None, (r["stage"], r.get("block"), r["reason"])))
                              for r in plan.rejects)  # fmt: skip
        report.stored_train = len(clean)
        report.seconds = round(time.perf_counter() - start, 3)
        if extras.report_path is not None:
            write_json(extras.report_path, report.to_dict())
        store.commit(clean, plan.sides, batch, extras.feedback, extras.cursors)
    return report
