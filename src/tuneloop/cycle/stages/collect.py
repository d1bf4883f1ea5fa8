"""collect: take the inbox's files into the cycle, look at what the serving log and the
training store hold, and act on a production model tainted by an erasure."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from tuneloop.datasets import DatasetStore
from tuneloop.flows.register import registry_for
from tuneloop.flows.serving import FEEDBACK, RESPONSES
from tuneloop.registry import Registry
from tuneloop.registry.release import eligibility
from tuneloop.state.cycle import Cycle, StageReport
from tuneloop.state.serving_log import ServingLog
from tuneloop.trainstore import TrainStore
from tuneloop.workspace import Workspace

NAME = "collect"


class InboxFile(BaseModel):
    name: str
    sha256: str
    bytes: int
    lines: int


class Report(StageReport):
    files: list[InboxFile] = Field(default_factory=list)
    serving_responses: int = 0
    serving_feedback: int = 0
    uncurated_records: int = 0
    tainted_production: str | None = None  # production was trained on data erased since
    action: Literal["retrain", "rollback"] | None = None  # what cycle.on_tainted did
    to: str | None = None  # the version rolled back to ("base": none left)


def run(ws: Workspace, cycle: Cycle) -> Report:
    tainted = handle_tainted(ws)
    inbox = ws.inbox_dir
    if inbox.is_dir():
        for path in sorted(inbox.glob("*.jsonl")):
            _take(path, cycle.collected_dir)
    files = [
        InboxFile(name=p.name, sha256=_sha256(p), bytes=p.stat().st_size, lines=_lines(p))
        for p in sorted(cycle.collected_dir.glob("*.jsonl"))
    ]
    responses, feedback = serving_log_pending(ws)
    report = Report(
        files=files,
        serving_responses=responses,
        serving_feedback=feedback,
        uncurated_records=uncurated_records(ws),
        **tainted,
    )
    return report.model_copy(update=_verdict(report, inbox))


def _verdict(report: Report, inbox: Path) -> dict[str, str]:
    lines = sum(f.lines for f in report.files)
    retrain = report.action == "retrain"
    waiting = report.uncurated_records
    responses, feedback = report.serving_responses, report.serving_feedback
    if not report.files and not responses and not feedback and not waiting and not retrain:
        return {
            "status": "stopped",
            "summary": f"no new data: inbox {inbox} is empty, no "
            "serving-log response or feedback is ready, every stored record is curated",
        }
    summary = (
        f"{len(report.files)} inbox files ({lines} lines), {responses} serving responses "
        f"and {feedback} feedback ready, {waiting} stored records not yet curated"
    )
    if report.tainted_production is not None:
        summary += f"; production v{report.tainted_production} is tainted by an erasure: " + (
            "retraining without the erased data" if retrain else f"rolled back to {report.to}"
        )
    return {"status": "done", "summary": summary}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def _take(src: Path, folder: Path) -> Path:
    """Move ``src`` into ``folder`` under a free name (rename when on one file system)."""
    folder.mkdir(parents=True, exist_ok=True)
    dest, n = folder / src.name, 1
    while dest.exists():
        n += 1
        dest = folder / f"{src.stem}.{n}{src.suffix}"
    try:
        src.replace(dest)
    except OSError:  # another file system: copy whole, then remove (a rerun dedups by sha256)
        tmp = folder / f".{dest.name}.tmp"
        shutil.copyfile(src, tmp)
        tmp.replace(dest)
        src.unlink()
    return dest


def uncurated_records(ws: Workspace) -> int:
    """Training-store records that no dataset version has seen yet."""
    with TrainStore(ws.store("train", "gateway")) as store:
        total = store.count()
    store_ds = DatasetStore(ws.datasets_dir)
    latest = store_ds.latest()
    seen = int(store_ds.show(latest)["inputs"].get("train_store_records", 0)) if latest else 0
    return max(0, total - seen)


def serving_log_pending(ws: Workspace) -> tuple[int, int]:
    """(responses, feedback rows) the next serving-log ingest would read."""
    if not (ws.config.cycle.serving_log and ws.has_serving_log()):
        return 0, 0
    with TrainStore(ws.store("train", "gateway")) as store:
        seen_r, seen_f = store.cursor(RESPONSES), store.cursor(FEEDBACK)
    log = ServingLog(ws.store("serving", "gateway"))
    try:
        cutoff = time.time() - ws.config.serve.feedback_window_s
        return log.pending(seen_r, cutoff, seen_f)
    finally:
        log.close()


def tainted_production(registry: Registry) -> str | None:
    """The production version, when it was trained on data erased since."""
    version = registry.aliases().get("production")
    return version if version is not None and registry.get(version).tainted else None


def handle_tainted(ws: Workspace) -> dict[str, str]:
    """``cycle.on_tainted``: roll back to the newest untainted version now, or retrain."""
    registry = registry_for(ws)
    tainted = tainted_production(registry)
    if tainted is None:
        return {}
    if ws.config.cycle.on_tainted == "retrain":
        return {"tainted_production": tainted, "action": "retrain"}
    clean = [v.version for v in registry.list() if v.version != tainted and eligibility(v, None).ok]
    target = clean[-1] if clean else None
    registry.retire_production(target, f"v{tainted} was trained on erased data")
    return {"tainted_production": tainted, "action": "rollback", "to": target or "base"}
