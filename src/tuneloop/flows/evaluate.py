"""``tuneloop evaluate MODEL_REF``: run the evaluator role over every suite, save the report.

MODEL_REF is a registry version, an alias (production, canary, previous) or ``base``. This is
the only flow that reads evaluation text (through :mod:`tuneloop.evalside`); it writes per-item
scores, never the items, into ``eval/reports/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneloop.config import EvaluateConfig
from tuneloop.datasets import DatasetStore
from tuneloop.evalside.evaluator import Evaluator, load_model_for_eval
from tuneloop.evalside.probe import memorization_probe
from tuneloop.evalside.report import EvalReport, SuiteResult
from tuneloop.evalside.safety_sets import safety_suite, toxicity_suite
from tuneloop.evalside.store import EvalStore
from tuneloop.evalside.suites import (
    Suite,
    budget,
    forgetting_suite,
    load_user_suite,
)
from tuneloop.flows.register import registry_for
from tuneloop.gateway import time_window
from tuneloop.model.fetch import base_folder
from tuneloop.workspace import Workspace


def _resolve_model(ws: Workspace, ref: str) -> tuple[str, str, Path | None, str | None]:
    """(report name, base folder, adapter folder or None, dataset version or None)."""
    if ref == "base":
        return "base", base_folder(ws.config.train.base), None, None
    registry = registry_for(ws)
    version = registry.resolve(ref)
    dest = ws.eval_model_dir(version.version)
    if not dest.exists():
        registry.download(version.version, dest)
    lineage = version.lineage
    return (
        f"v{version.version}",
        base_folder(lineage.base_ref),
        dest,
        lineage.dataset_version,
    )


def _suites(cfg: EvaluateConfig) -> list[Suite]:
    suites: list[Suite] = []
    if cfg.forgetting_items:
        shared = Path(cfg.shared_data) if cfg.shared_data else None
        suites.append(forgetting_suite(shared, cfg.forgetting_items))
    if cfg.safety:
        suites.append(safety_suite(cfg.safety_sets, cfg.safety_files))
    if cfg.toxicity:
        suites.append(toxicity_suite())
    suites += [load_user_suite(Path(p), "safety", name) for name, p in cfg.safety_suites.items()]
    suites += [load_user_suite(Path(p), "task", name) for name, p in cfg.user_suites.items()]
    return suites


def cutoff_window(ws: Workspace, dataset: str | None) -> str | None:
    """The training data's newest time window: eval items up to it are 'old', later ones fresh."""
    if dataset is None:
        return None
    windows = [
        time_window(r.created_at, "week") for r in DatasetStore(ws.datasets_dir).load(dataset)
    ]
    known = [w for w in windows if w]
    return max(known) if known else None


def evaluate(ws: Workspace, ref: str) -> tuple[EvalReport, Path]:
    """Score one model on the store's task suites, forgetting and safety; save the report."""
    name, base, adapter, dataset = _resolve_model(ws, ref)
    report, path = evaluate_model(ws, name, base, adapter, cutoff_window(ws, dataset))
    if adapter is not None:
        registry_for(ws).attach_eval_report(name.removeprefix("v"), path)
    return report, path


def evaluate_model(
    ws: Workspace, name: str, base: str, adapter: Path | None, cutoff: str | None
) -> tuple[EvalReport, Path]:
    """Score a base model (with an adapter folder, registered or not) as the evaluator role;
    ``cutoff``: the training data's newest window, for the memorization probe."""
    cfg = ws.config.evaluate
    model, tokenizer, fingerprint = load_model_for_eval(base, adapter)
    prompt = ws.config.curate.system_prompt if cfg.task_system_prompt is None else (
        cfg.task_system_prompt or None)  # fmt: skip
    evaluator = Evaluator(model, tokenizer, name, ws.eval_cache_dir, cfg.max_new_tokens,
                          cfg.batch_size, fingerprint, prompt, cfg.fields)  # fmt: skip
    try:
        with EvalStore(ws.store("eval", "eval")) as store:
            index_version = store.version()
            suites = evaluator.evaluate_store(store, cfg.store_suites, cfg.max_items_per_suite,
                                              cfg.newest_suites)  # fmt: skip
        for suite in _suites(cfg):
            items = budget(suite.items, cfg.max_items_per_suite)
            suites[suite.name] = evaluator.score_items(suite.name, suite.kind, items)
        report = evaluator.build_report(name, suites, index_version, _probe(suites, cutoff))
    finally:
        evaluator.close()
    path = ws.eval_report_path(name, index_version)
    path.parent.mkdir(parents=True, exist_ok=True)
    report.save(path)
    return report, path


def _probe(suites: dict[str, SuiteResult], cutoff: str | None) -> dict[str, Any]:
    if cutoff is None:
        return {"skipped": "no training cut-off (base model or undated data)"}
    return {
        name: memorization_probe(result, cutoff)
        for name, result in suites.items()
        if result.kind == "task"
    }
