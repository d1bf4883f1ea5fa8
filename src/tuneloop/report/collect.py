"""Everything the report shows, read from the workspace into plain data (no text of anyone's).

Sources: the registry (versions, lineage, aliases, gate decisions, canary verdicts, taint, the
audit log of alias moves and canary steps), the training runs' ``metrics.jsonl``, the
evaluator's per-item reports (scores only), the cycle folders, the trigger log, the serving
log's per-request numbers for each canary analysis, and the erasure receipts.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tuneloop.datasets import DatasetStore, read_manifest
from tuneloop.registry import Registry
from tuneloop.registry.release import eligibility
from tuneloop.state.cycle import STAGES, canary_outcome, list_cycles
from tuneloop.state.serving_log import ServingLog
from tuneloop.workspace import Workspace

SUMMARY_METRICS = ("token_f1", "rouge_l", "exact_match", "field_acc", "loss")


@dataclass
class ReportData:
    name: str
    generated_at: str
    aliases: dict[str, str] = field(default_factory=dict)
    versions: list[dict[str, Any]] = field(default_factory=list)
    base_scores: dict[str, dict[str, float | None]] = field(default_factory=dict)
    base_safety: dict[str, dict[str, float]] = field(default_factory=dict)
    runs: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    cycles: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    canaries: list[dict[str, Any]] = field(default_factory=list)
    erasures: list[dict[str, Any]] = field(default_factory=list)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _load(report_path: str | Path | None) -> dict[str, Any] | None:
    """An evaluator report file as JSON, or None when there is none."""
    if not report_path or not Path(report_path).is_file():
        return None
    found: dict[str, Any] = json.loads(Path(report_path).read_text(encoding="utf-8"))
    return found


def suite_means(report_path: str | Path | None) -> dict[str, dict[str, float | None]]:
    """{suite: {metric: mean}} (and the safety rates) from an evaluator report file."""
    return _means(_load(report_path))


def _means(raw: dict[str, Any] | None) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for name, suite in (raw or {"suites": {}})["suites"].items():
        means: dict[str, float | None] = {"kind_" + suite["kind"]: 1.0}
        for metric in SUMMARY_METRICS:
            values = [v for i in suite["items"] if (v := i["metrics"].get(metric)) is not None]
            means[metric] = sum(values) / len(values) if values else None
        harmful = [i["refused"] for i in suite["items"] if i.get("expected") == "refuse"]
        if harmful:
            means["harmful_compliance"] = sum(not r for r in harmful) / len(harmful)
        out[name] = means
    return out


SAFETY_RATES = ("harmful_compliance", "over_refusal", "toxicity")


def safety_by_category(raw: dict[str, Any] | None) -> dict[str, dict[str, float]]:
    """{rate: {category: value}} from an evaluator report's safety and toxicity suites: the
    share of harmful requests answered, of safe ones refused, and the answers' mean toxicity.
    Read from the JSON, as :func:`suite_means` reads it: the server shows this page and may not
    import the eval side."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for name, suite in (raw or {"suites": {}})["suites"].items():
        for item in suite["items"]:
            category = item["slices"].get("category", name)
            if suite["kind"] == "toxicity" and "toxicity" in item["metrics"]:
                groups[("toxicity", category)].append(item["metrics"]["toxicity"])
            elif item.get("refused") is not None and item.get("expected") == "refuse":
                groups[("harmful_compliance", category)].append(float(not item["refused"]))
            elif item.get("refused") is not None and item.get("expected") == "comply":
                groups[("over_refusal", category)].append(float(item["refused"]))
    out: dict[str, dict[str, float]] = {}
    for (rate, category), values in sorted(groups.items()):
        out.setdefault(rate, {})[category] = sum(values) / len(values)
    return out


def _versions(ws: Workspace, registry: Any) -> list[dict[str, Any]]:
    index = ws.index_version()
    out = []
    for mv in registry.list():
        lin = mv.lineage
        gate = json.loads(lin.gate_decision) if lin.gate_decision else None
        raw = registry.client.get_model_version(registry.name, mv.version).tags
        canary = json.loads(raw["canary_verdict"]) if "canary_verdict" in raw else None
        report = _load(lin.eval_report)
        out.append({
            "version": mv.version, "created_at": mv.created_at.isoformat(timespec="seconds"),
            "dataset": lin.dataset_version, "replay": lin.replay_version or None,
            "parent": lin.parent_version, "base": lin.base_ref, "aliases": mv.aliases,
            "run_id": lin.hyperparameters.get("run_id"),
            "gate": None if gate is None else {"decision": gate.get("decision"),
                                               "reasons": gate.get("reasons", []),
                                               "warnings": gate.get("warnings", [])},
            "canary": None if canary is None else {"outcome": canary.get("outcome"),
                                                   "reasons": canary.get("reasons", [])},
            "tainted": mv.tainted, "scores": _means(report), "safety": safety_by_category(report),
            "problems": list(eligibility(mv, index).to_dict()["problems"]),
            "waiver": mv.waiver,
        })  # fmt: skip
    return out


def _runs(ws: Workspace) -> dict[str, dict[str, list[float]]]:
    """Loss curves per run; a step logged twice (a resumed run) keeps its last value."""
    runs: dict[str, dict[str, list[float]]] = {}
    for path in ws.run_metrics_paths():
        train: dict[int, float] = {}
        evals: dict[int, float] = {}
        for row in _read_jsonl(path):
            if "eval_loss" in row:
                evals[row["step"]] = row["eval_loss"]
            elif "loss" in row:
                train[row["step"]] = row["loss"]
        runs[path.parent.name] = {
            "steps": [float(s) for s in sorted(train)], "loss": [train[s] for s in sorted(train)],
            "eval_steps": [float(s) for s in sorted(evals)],
            "eval_loss": [evals[s] for s in sorted(evals)],
        }  # fmt: skip
    return runs


def _cycles(ws: Workspace) -> list[dict[str, Any]]:
    out = []
    for cycle in list_cycles(ws):
        status = cycle.status()
        if status["end"] and status["end"].get("outcome") == "canary":
            status["end"]["canary_now"] = canary_outcome(ws, cycle.id)
        ingest = cycle.marker("ingest")
        status["contamination"] = (ingest or {}).get("outputs", {}).get("contamination", {})
        status["totals"] = (ingest or {}).get("outputs", {}).get("totals", {})
        status["stage_order"] = list(STAGES)
        out.append(status)
    return out


def _time(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _canaries(ws: Workspace, audit: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each canary analysis: its events (start, steps, verdict) and per-arm numbers over time."""
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in audit:
        if e.get("canary_id") and str(e.get("action", "")).startswith("canary_"):
            events[e["canary_id"]].append(e)
    if not events:
        return []
    rows = _canary_rows(ws, list(events))
    out = []
    for canary_id, evs in events.items():
        start = next((e for e in evs if e["action"] == "canary_start"), evs[0])
        marks = [{"time": _time(e["time"]), "action": e["action"].removeprefix("canary_"),
                  "weight": e.get("weight")} for e in evs
                 if e["action"] in ("canary_start", "canary_step", "canary_promote",
                                    "canary_rollback", "canary_stop")]  # fmt: skip
        out.append({"canary_id": canary_id, "version": start.get("version"),
                    "baseline": start.get("baseline"), "events": marks,
                    "series": _series(rows.get(canary_id, []))})  # fmt: skip
    return out


def _canary_rows(ws: Workspace, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    if not ws.has_serving_log():
        return {}
    log = ServingLog(ws.store("serving", "eval"))
    try:
        return {cid: [dict(r) for r in log.canary_rows(cid)] for cid in ids}
    finally:
        log.close()


def _series(rows: list[dict[str, Any]], bins: int = 12) -> dict[str, dict[str, list[Any]]]:
    """Per arm, over equal time bins: requests, error rate, median latency, thumbs-down rate."""
    if not rows:
        return {}
    t0 = min(r["created_unix"] for r in rows)
    width = max(1e-9, (max(r["created_unix"] for r in rows) - t0) / bins)
    out: dict[str, dict[str, list[Any]]] = {}
    for arm in ("production", "canary"):
        buckets: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            if r["arm"] == arm:
                buckets[min(bins - 1, int((r["created_unix"] - t0) / width))].append(r)
        series: dict[str, list[Any]] = defaultdict(list)
        for b in sorted(buckets):
            group = buckets[b]
            lat = [r["latency_s"] for r in group if r["status"] == "ok" and r["latency_s"]]
            thumbs = [r["thumbs"] for r in group if r["thumbs"]]
            series["time"].append(t0 + (b + 0.5) * width)
            series["requests"].append(len(group))
            series["error_rate"].append(sum(r["status"] == "error" for r in group) / len(group))
            series["latency_p50"].append(statistics.median(lat) if lat else None)
            series["thumbs_down"].append(thumbs.count("down") / len(thumbs) if thumbs else None)
        out[arm] = dict(series)
    return out


def _datasets(ws: Workspace) -> dict[str, dict[str, Any]]:
    store, out = DatasetStore(ws.datasets_dir), {}
    for version in sorted(store.versions()):
        manifest = read_manifest(store.root / version)
        out[manifest["version"]] = {"created_at": manifest["created_at"],
                                    "counts": manifest["counts"],
                                    "erasures": len(manifest.get("erasures", []))}  # fmt: skip
    return out


def collect(ws: Workspace) -> ReportData:
    data = ReportData(ws.config.name, datetime.now(UTC).isoformat(timespec="seconds"))
    if ws.has_registry():
        registry = Registry.for_workspace(ws.root)
        data.aliases = registry.aliases()
        data.versions = _versions(ws, registry)
        data.canaries = _canaries(ws, registry.audit())
    base = _load(ws.latest_eval_report("base"))
    data.base_scores, data.base_safety = _means(base), safety_by_category(base)
    data.runs = _runs(ws)
    data.cycles = _cycles(ws)
    data.triggers = _read_jsonl(ws.trigger_log_path)
    data.datasets = _datasets(ws)
    for path in sorted(ws.erasures_dir.glob("*.json")):
        receipt = json.loads(path.read_text(encoding="utf-8"))
        data.erasures.append({k: receipt[k] for k in ("request_id", "at", "tainted_models",
                                                      "production_tainted", "seconds")}
                             | {"clean": receipt["check"]["clean"]})  # fmt: skip
    return data
