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
from tuneloop.errors import WorkspaceError
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


def curate(ws: Workspace, allow_empty: bool = False) -> CurateReport:
    """Build a dataset version from everything in the training store.

    An empty store is refused before anything is written (a 0-record dataset version is never
    what a person running ``tuneloop curate`` meant); the cycle passes ``allow_empty`` and stops
    on the empty version's report instead."""
    start = time.perf_counter()
    cfg = ws.config  # a bad tuneloop.toml is reported before any store is opened
    with TrainStore(ws.store("train", "train")) as store:
        records = list(store.iter_records())
    if not records and not allow_empty:
        raise WorkspaceError(
            f"{ws.root}: the training store is empty, so there is nothing to curate; "
            "add interactions first with `tuneloop ingest FILE`"
        )
    with EvalStore(ws.store("eval", "train")) as estore:
        index = load_or_rebuild(ws, estore)
    embedder = embedder_for(cfg.contamination)
    blocks = build_pipeline(cfg.curate, Checker(index, embedder))
    result = run_pipeline(blocks, records)
    decon = next(b for b in blocks if isinstance(b, ContaminationBlock))
    datasets = DatasetStore(ws.datasets_dir)
    parent = datasets.latest()
    store_name = ws.train_store_path.relative_to(ws.root).as_posix()
    inputs = {"train_store_records": len(records), "train_store": store_name}
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
