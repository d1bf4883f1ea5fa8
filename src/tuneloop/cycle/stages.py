"""The stages of one cycle, each safe to run again after a crash at any point.

collect  inbox files are moved (rename: atomic) into the cycle's folder; the serving log is
         only looked at. Nothing new anywhere: the cycle stops here.
ingest   each collected file is ingested once: its sha256 becomes a training-store cursor,
         committed in the same transaction as its records, so a rerun skips a file whose
         commit happened and redoes one whose commit did not (same batch name, same rejects
         file). The serving log has its own cursors, committed the same way.
curate   a content-addressed dataset version: the same inputs give the same id, never a twin.
         No new training records since the last trained dataset: the cycle stops here.
train    the run folder is a hash of the job and resumes from its last checkpoint; a run
         registered before the crash is found again instead of registered twice.
gate     evaluation answers are cached, the decision is recorded on the version; a refusal
         ends the cycle.
release  a canary (when a server is running) or a promotion, both idempotent.
"""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from tuneloop.datasets import DatasetStore
from tuneloop.jsonl import read_json
from tuneloop.registry import Registry
from tuneloop.state.cycle import Cycle, StageResult
from tuneloop.state.server_file import server_running
from tuneloop.trainstore import TrainStore
from tuneloop.workspace import Workspace

FILE_CURSOR = "file:"


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
    import time

    from tuneloop.flows.serving import FEEDBACK, RESPONSES
    from tuneloop.state.serving_log import ServingLog

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


def handle_tainted(ws: Workspace) -> dict[str, Any]:
    """``cycle.on_tainted``: roll back to the newest untainted version now, or retrain."""
    from tuneloop.flows.register import registry_for

    registry = registry_for(ws)
    tainted = tainted_production(registry)
    if tainted is None:
        return {}
    if ws.config.cycle.on_tainted == "retrain":
        return {"tainted_production": tainted, "action": "retrain"}
    from tuneloop.registry.release import eligibility

    clean = [v.version for v in registry.list() if v.version != tainted and eligibility(v, None).ok]
    target = clean[-1] if clean else None
    registry.retire_production(target, f"v{tainted} was trained on erased data")
    return {"tainted_production": tainted, "action": "rollback", "to": target or "base"}


def collect(ws: Workspace, cycle: Cycle) -> StageResult:
    tainted = handle_tainted(ws)
    inbox = ws.inbox_dir
    if inbox.is_dir():
        for path in sorted(inbox.glob("*.jsonl")):
            _take(path, cycle.collected_dir)
    files: list[dict[str, Any]] = [
        {"name": p.name, "sha256": _sha256(p), "bytes": p.stat().st_size, "lines": _lines(p)}
        for p in sorted(cycle.collected_dir.glob("*.jsonl"))
    ]
    responses, feedback = serving_log_pending(ws)
    waiting = uncurated_records(ws)
    outputs = {"files": files, "serving_responses": responses, "serving_feedback": feedback,
               "uncurated_records": waiting, **tainted}  # fmt: skip
    lines = sum(f["lines"] for f in files)
    retrain = tainted.get("action") == "retrain"
    if not files and not responses and not feedback and not waiting and not retrain:
        return StageResult("stopped", f"no new data: inbox {inbox} is empty, no serving-log "
                           "response or feedback is ready, every stored record is curated",
                           outputs)  # fmt: skip
    summary = (f"{len(files)} inbox files ({lines} lines), {responses} serving responses and "
               f"{feedback} feedback ready, {waiting} stored records not yet curated")  # fmt: skip
    if tainted:
        summary += (f"; production v{tainted['tainted_production']} is tainted by an erasure: "
                    + ("retraining without the erased data" if retrain
                       else f"rolled back to {tainted['to']}"))  # fmt: skip
    return StageResult("done", summary, outputs)


def _ingest_files(ws: Workspace, cycle: Cycle, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from tuneloop.flows.ingest import Extras, ingest_file

    reports = []
    for f in files:
        key = FILE_CURSOR + f["sha256"]
        report_path = cycle.ingest_dir / f"file-{f['sha256'][:16]}.json"
        with TrainStore(ws.store("train", "gateway")) as store:
            done = store.cursor(key) > 0
        if done and report_path.is_file():
            reports.append(read_json(report_path))
            continue
        if done:  # ingested by an earlier cycle: the same file dropped into the inbox twice
            reports.append({"file": f["name"], "records": 0, "skipped": "already ingested"})
            continue
        extras = Extras(cursors={key: 1}, batch=f"{cycle.id}-{f['sha256'][:12]}",
                        report_path=report_path)  # fmt: skip
        report = ingest_file(ws, cycle.collected_dir / f["name"], extras=extras)
        reports.append(report.to_dict())
    return reports


def _ingest_serving(ws: Workspace, cycle: Cycle) -> list[dict[str, Any]]:
    """Every serving-log batch this cycle committed: one per attempt that got past its commit
    (an attempt killed before its commit is redone under the same name)."""
    if not (ws.config.cycle.serving_log and ws.has_serving_log()):
        return []
    from tuneloop.flows.serving import ingest_serving_log

    ingest_serving_log(ws, report_dir=cycle.ingest_dir, prefix=f"serving-{cycle.id}")
    return [read_json(p) for p in sorted(cycle.ingest_dir.glob("serving-*.json"))]


def ingest(ws: Workspace, cycle: Cycle) -> StageResult:
    collected = cycle.outputs("collect")
    reports = _ingest_files(ws, cycle, collected["files"])
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
    outputs = {"reports": reports, "totals": dict(totals), "contamination": dict(methods)}
    contaminated = sum(methods.values())
    summary = (f"{totals['records']} records: {totals['train']} to training, {totals['eval']} "
               f"to the eval bucket, {totals['dropped']} dropped ({contaminated} by the "
               f"contamination check)")  # fmt: skip
    return StageResult("done", summary, outputs)


def last_trained_dataset(registry: Registry) -> tuple[str, str] | None:
    """(model version, dataset version) of the newest registered model."""
    versions = registry.list()
    if not versions:
        return None
    newest = versions[-1]
    return newest.version, newest.lineage.dataset_version


def curate(ws: Workspace, cycle: Cycle) -> StageResult:
    from tuneloop.flows.curate import curate as build
    from tuneloop.flows.register import registry_for

    report = build(ws, allow_empty=True)
    outputs = {"dataset": report.version, "train": report.train,
               "validation": report.validation, "records_in": report.records_in,
               "dropped": report.records_in - report.records_out}  # fmt: skip
    if report.train == 0:
        return StageResult("stopped", f"dataset {report.version} has no training records "
                           "(every record was dropped or held out)", outputs)  # fmt: skip
    trained = last_trained_dataset(registry_for(ws))
    if trained is not None and trained[1]:
        diff = DatasetStore(ws.datasets_dir).diff(trained[1], report.version)
        outputs["since_last_trained"] = {"model_version": trained[0], "dataset": trained[1],
                                         "added": len(diff.added), "removed": len(diff.removed),
                                         "changed": len(diff.changed)}  # fmt: skip
        retrain = cycle.outputs("collect").get("action") == "retrain"
        if not (diff.added or diff.removed or diff.changed or retrain):
            return StageResult("stopped", f"no new training data: dataset {report.version} holds "
                               f"the records v{trained[0]} was trained on", outputs)  # fmt: skip
    summary = (f"dataset {report.version}: {report.train} train + {report.validation} "
               f"validation ({outputs['dropped']} dropped by curation)")  # fmt: skip
    return StageResult("done", summary, outputs)


def train(ws: Workspace, cycle: Cycle) -> StageResult:
    from tuneloop.flows.train import train as run

    dataset = cycle.outputs("curate")["dataset"]
    report = run(ws, dataset=dataset, resume=True)
    r = report.result
    outputs = {"version": report.version, "run_id": report.run_id,
               "adapter_sha256": report.adapter_sha256, "steps": r["steps"],
               "tokens": r["tokens"], "train_seconds": r["seconds"],
               "best_eval_loss": r["best_eval_loss"], "best_step": r["best_step"],
               "records": report.lineage["records"],
               "rehearsal": report.lineage.get("rehearsal")}  # fmt: skip
    loss = r["best_eval_loss"]
    summary = (f"v{report.version}: {r['steps']} steps, {r['tokens']} tokens, best eval loss "
               f"{loss if loss is None else round(loss, 4)}")  # fmt: skip
    return StageResult("done", summary, outputs)


def gate(ws: Workspace, cycle: Cycle) -> StageResult:
    from tuneloop.flows.gate import run_gate

    version = cycle.outputs("train")["version"]
    run = run_gate(ws, str(version))
    decision = run.decision
    outputs = {"decision": decision["decision"], "reasons": decision["reasons"],
               "candidate": decision.get("candidate"), "incumbent": decision.get("incumbent"),
               "checks": decision.get("checks"),
               "warnings": decision.get("warnings", [])}  # fmt: skip
    failed = [c["name"] for c in decision.get("checks", []) if not c.get("passed", True)]
    if decision["decision"] == "inconclusive":
        return StageResult("inconclusive", f"v{version}: the gate could not decide "
                           f"({', '.join(failed)}); the release waits", outputs)  # fmt: skip
    if decision["decision"] != "pass":
        return StageResult("refused", f"v{version} refused by the gate ({', '.join(failed)})",
                           outputs)  # fmt: skip
    return StageResult("done", f"v{version} passed the gate", outputs)


def release(ws: Workspace, cycle: Cycle) -> StageResult:
    from tuneloop.flows.register import registry_for
    from tuneloop.registry.release import promote
    from tuneloop.serve.canary import actions
    from tuneloop.state.canary import read_state

    cfg = ws.config.cycle
    index = ws.index_version()
    version = str(cycle.outputs("train")["version"])
    running = server_running(ws.serve_dir)
    mode = cfg.release if cfg.release != "auto" else ("canary" if running else "promote")
    registry = registry_for(ws)
    if mode == "none":
        return StageResult("done", f"v{version} stays a registered candidate (release = none)",
                           {"outcome": "candidate", "version": version})  # fmt: skip
    if mode == "promote":
        promote(registry, version, index)
        return StageResult("done", f"v{version} promoted to production",
                           {"outcome": "promoted", "version": version})  # fmt: skip
    state = read_state(ws.serve_dir)
    if not (state and state.running and state.version == version):
        state = actions.start(ws.serve_dir, registry, version, cfg.canary_weight,
                              cfg.canary_step, cfg.canary_max_weight, index)  # fmt: skip
    where = "the server judges it" if running else "no server is running yet to judge it"
    return StageResult("done", f"v{version} is the canary at {state.weight:g}% of users ({where})",
                       {"outcome": "canary", "version": version,
                        "canary_id": state.canary_id})  # fmt: skip


RUNNERS = {"collect": collect, "ingest": ingest, "curate": curate, "train": train,
           "gate": gate, "release": release}  # fmt: skip
