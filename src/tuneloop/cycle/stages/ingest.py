"""ingest: each collected file once (its sha256 is a training-store cursor committed with its
records), then the serving log's new responses and feedback."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel, Field

from tuneloop.cycle.stages import collect
from tuneloop.flows.ingest import Extras, ingest_file
from tuneloop.flows.serving import ingest_serving_log
from tuneloop.jsonl import read_json
from tuneloop.state.cycle import Cycle, StageReport
from tuneloop.trainstore import TrainStore
from tuneloop.workspace import Workspace

NAME = "ingest"
FILE_CURSOR = "file:"


class Totals(BaseModel):
    records: int = 0
    train: int = 0
    eval: int = 0
    dropped: int = 0


class Report(StageReport):
    # each source's ingest report, as its file keeps it
    reports: list[dict[str, Any]] = Field(default_factory=list)
    totals: Totals = Totals()
    # records dropped, by the check that found them
    contamination: dict[str, int] = Field(default_factory=dict)


def run(ws: Workspace, cycle: Cycle) -> Report:
    collected = cycle.report(collect.NAME, collect.Report)
    reports = _ingest_files(ws, cycle, collected.files)
    reports += _ingest_serving(ws, cycle)
    totals: Counter[str] = Counter()
    methods: Counter[str] = Counter()
    for r in reports:
        totals["records"] += r.get("records", 0)
        stored = r.get("stored", {})
        totals["train"] += stored.get("train", 0)
        totals["eval"] += stored.get("eval", 0) + r.get("eval_already_present", 0)
        totals["dropped"] += sum(r.get("dropped", {}).values())
        methods.update(r.get("contamination", {}))
    summary = (
        f"{totals['records']} records: {totals['train']} to training, {totals['eval']} "
        f"to the eval bucket, {totals['dropped']} dropped ({sum(methods.values())} by "
        "the contamination check)"
    )
    return Report(
        summary=summary, reports=reports, totals=Totals(**totals), contamination=dict(methods)
    )


def _ingest_files(
    ws: Workspace, cycle: Cycle, files: list[collect.InboxFile]
) -> list[dict[str, Any]]:
    reports = []
    for f in files:
        key = FILE_CURSOR + f.sha256
        report_path = cycle.ingest_dir / f"file-{f.sha256[:16]}.json"
        with TrainStore(ws.store("train", "gateway")) as store:
            done = store.cursor(key) > 0
        if done and report_path.is_file():
            reports.append(read_json(report_path))
            continue
        if done:  # ingested by an earlier cycle: the same file dropped into the inbox twice
            reports.append({"file": f.name, "records": 0, "skipped": "already ingested"})
            continue
        extras = Extras(
            cursors={key: 1}, batch=f"{cycle.id}-{f.sha256[:12]}", report_path=report_path
        )
        report = ingest_file(ws, cycle.collected_dir / f.name, extras=extras)
        reports.append(report.to_dict())
    return reports


def _ingest_serving(ws: Workspace, cycle: Cycle) -> list[dict[str, Any]]:
    """Every serving-log batch this cycle committed: one per attempt that got past its commit
    (an attempt killed before its commit is redone under the same name)."""
    if not (ws.config.cycle.serving_log and ws.has_serving_log()):
        return []
    ingest_serving_log(ws, report_dir=cycle.ingest_dir, prefix=f"serving-{cycle.id}")
    return [read_json(p) for p in sorted(cycle.ingest_dir.glob("serving-*.json"))]
