"""Adding evaluation items: check them against the training data, append, update the index.

Contamination runs both ways. A new eval item that already appears in the training store (as
an exact copy, a near copy, an n-gram overlap or a canary) would measure memorization, not
skill, so it is refused and reported. Accepted items are appended to the eval store, and the
contamination index is extended with their hashes and moved to the store's new head; the
semantic check's threshold of the suite that grew is calibrated again (the report carries it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tuneloop.config import ContaminationConfig
from tuneloop.contamination.calibration import SuiteCalibration
from tuneloop.contamination.check import Checker, Embedder
from tuneloop.contamination.fields import fields_of
from tuneloop.contamination.index import (
    ContaminationIndex,
    IndexSettings,
    build_index,
    semantic_rule,
)
from tuneloop.contamination.persist import StaleIndexError, load_index, save_index
from tuneloop.contamination.semantic import embedder_for, enabled, item_texts
from tuneloop.errors import StorageError
from tuneloop.evalside.store import EvalStore
from tuneloop.records import Record
from tuneloop.storage import Role
from tuneloop.workspace import Workspace

CHECK_BATCH = 4096

log = logging.getLogger("tuneloop.evalside")


@dataclass
class AddReport:
    suite: str
    accepted: list[str] = field(default_factory=list)
    refused: list[dict[str, object]] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    index_version: str = ""
    semantic: SuiteCalibration | None = None  # the suite's calibration; None: no embeddings
    semantic_line: str = ""  # the same, said in one line

    def to_dict(self) -> dict[str, object]:
        return {
            "suite": self.suite,
            "accepted": len(self.accepted),
            "refused": self.refused,
            "already_present": len(self.already_present),
            "index_version": self.index_version,
            "semantic": self.semantic.to_dict() if self.semantic is not None else None,
        }


def _matches_in_training(
    items: Sequence[Record], training: Iterable[Record], settings: IndexSettings
) -> dict[str, dict[str, object]]:
    """For each new item found in the training data: the strongest match, by training id."""
    ids, texts = [r.id for r in items], [r.content_text for r in items]
    probe = build_index(settings, ids, texts, "probe", fields=[fields_of(r) for r in items])
    checker = Checker(probe)
    found: dict[str, dict[str, object]] = {}
    batch: list[Record] = []

    def flush() -> None:
        for rec, matches in zip(batch, checker.check_records(batch), strict=True):
            for m in matches:
                if m.eval_id not in found:
                    evidence = {k: v for k, v in m.evidence().items() if k != "eval_id"}
                    found[m.eval_id] = {"training_id": rec.id, **evidence}
        batch.clear()

    for rec in training:
        batch.append(rec)
        if len(batch) >= CHECK_BATCH:
            flush()
    if batch:
        flush()
    return found


def load_or_rebuild(ws: Workspace, store: EvalStore) -> ContaminationIndex:
    """The current index, rebuilt from the store when missing, stale, built differently or
    written in an older format (whose message goes to stderr: the rebuild takes a while)."""
    cfg = ws.config.contamination
    settings = cfg.index_settings()
    version = ws.index_version()
    if version is not None:
        try:
            index = load_index(ws.index_dir, version)
        except StaleIndexError as exc:
            log.warning("%s; rebuilding it now", exc)
            return rebuild_index(ws, store, settings, embedder_for(cfg))
        semantic_ok = (index.embeddings is not None) == enabled(cfg) or len(index) == 0
        if index.settings == settings and index.version == store.version() and semantic_ok:
            return index
    return rebuild_index(ws, store, settings, embedder_for(cfg))


def rebuild_index(
    ws: Workspace, store: EvalStore, settings: IndexSettings, embedder: Embedder | None = None
) -> ContaminationIndex:
    try:
        items = list(store.iter_items())
    except StorageError as exc:  # a server role that may not read eval text
        raise StorageError(
            f"{exc}: the contamination index is out of date (the eval set changed) and only "
            "the evaluator may rebuild it: run `tuneloop evalset list` with its role"
        ) from None
    texts = [it.record.content_text for it in items]
    ids = [it.item_id for it in items]
    fields = [fields_of(it.record) for it in items]
    embeddings = embedder.embed(item_texts(texts, fields)) if embedder and texts else None
    suites = [it.suite for it in items]
    index = build_index(settings, ids, texts, store.version(), (), embeddings, fields, suites)
    save_index(index, ws.index_dir)
    return index


def add_eval_items(
    ws: Workspace,
    items: Sequence[tuple[Record, str | None]],
    suite: str,
    training: Iterable[Record],
    role: Role = "eval",
) -> AddReport:
    """Check ``items`` against ``training``, append the clean ones, extend the index.

    ``role``: who appends: the evaluator (``evalset add``) or the gateway routing traffic to
    the eval bucket, which may write eval items but, on a server, never read them back."""
    cfg = ws.config.contamination
    settings = cfg.index_settings()
    report = AddReport(suite=suite)
    with EvalStore(ws.store("eval", role)) as store:
        index = load_or_rebuild(ws, store)
        present = set(index.item_ids)
        fresh = [(r, w) for r, w in items if r.id not in present]
        report.already_present = [r.id for r, _ in items if r.id in present]
        hits = _matches_in_training([r for r, _ in fresh], training, settings) if fresh else {}
        accepted = [(r, w) for r, w in fresh if r.id not in hits]
        report.refused = [{"id": rid, **hit} for rid, hit in hits.items()]
        if accepted:
            store.append([(suite, r, w) for r, w in accepted])
            texts = [r.content_text for r, _ in accepted]
            fields = [fields_of(r) for r, _ in accepted]
            embedder = embedder_for(cfg)
            embeddings = embedder.embed(item_texts(texts, fields)) if embedder else None
            canaries = [(i, c) for i, (r, _) in enumerate(accepted) for c in _registered(cfg, r)]
            ids = [r.id for r, _ in accepted]
            suites = [suite] * len(accepted)
            index.extend(ids, texts, store.version(), canaries, embeddings, fields, suites)
            save_index(index, ws.index_dir)
        report.accepted = [r.id for r, _ in accepted]
        report.index_version = index.version
        report.semantic = index.calibration.get(suite)
        if report.semantic is not None:
            report.semantic_line = report.semantic.describe(suite, semantic_rule(settings))
    return report


def _registered(cfg: ContaminationConfig, record: Record) -> list[str]:
    """Configured canary strings that this item carries."""
    return [c for c in cfg.canaries if c in record.content_text]
