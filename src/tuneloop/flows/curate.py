"""``tuneloop curate``: the training store → the curation blocks → a new dataset version."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tuneloop.contamination.check import Checker
from tuneloop.contamination.semantic import embedder_for
from tuneloop.curate.decontaminate import ContaminationBlock
from tuneloop.curate.pipeline import build_pipeline, run_pipeline
from tuneloop.datasets import DatasetStore
from tuneloop.evalside.intake import load_or_rebuild
from tuneloop.evalside.store import EvalStore
from tuneloop.trainstore import TrainStore
from tuneloop.workspace import Workspace


@dataclass
class CurateReport:
    version: str
    parent: str | None
    records_in: int
    records_out: int
    train: int
    validation: int
    blocks: list[dict[str, Any]]
    certificate: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def curate(ws: Workspace) -> CurateReport:
    """Build a dataset version from everything in the training store."""
    start = time.perf_counter()
    cfg = ws.config  # a bad tuneloop.toml is reported before any store is opened
    with EvalStore(ws.store("eval", "train")) as estore:
        index = load_or_rebuild(ws, estore)
    embedder = embedder_for(cfg.contamination)
    blocks = build_pipeline(cfg.curate, Checker(index, embedder))
    with TrainStore(ws.store("train", "train")) as store:
        records = list(store.iter_records())
    result = run_pipeline(blocks, records)
    decon = next(b for b in blocks if isinstance(b, ContaminationBlock))
    datasets = DatasetStore(ws.datasets_dir)
    parent = datasets.latest()
    inputs = {"train_store_records": len(records), "train_store": "train/store.sqlite"}
    version = datasets.create(
        result.records,
        parent=parent,
        inputs=inputs,
        blocks=result.blocks,
        drop_rows=result.log.rows,
        certificate=decon.certificate(),
    )
    split = [r.meta.get("split", "train") for r in result.records]
    return CurateReport(
        version=version.version,
        parent=parent,
        records_in=len(records),
        records_out=len(result.records),
        train=split.count("train"),
        validation=split.count("validation"),
        blocks=result.blocks,
        certificate=decon.certificate(),
        seconds=round(time.perf_counter() - start, 3),
    )
