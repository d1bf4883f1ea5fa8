"""The curation pipeline: a readable list of blocks, built from the workspace config."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from typing import Any

from tuneloop import progress
from tuneloop.config import CurateConfig
from tuneloop.contamination.check import Checker
from tuneloop.curate.base import Block, DropLog
from tuneloop.curate.clean import CleanBlock
from tuneloop.curate.decontaminate import ContaminationBlock
from tuneloop.curate.dedup import ExactDedupBlock, NearDedupBlock
from tuneloop.curate.feedback import FeedbackBlock
from tuneloop.curate.format import FormatBlock
from tuneloop.curate.pii import PIIRedactBlock
from tuneloop.curate.quality import QualityBlock
from tuneloop.curate.split import ValidationSplitBlock
from tuneloop.records import Record


def record_blocks(cfg: CurateConfig) -> list[Block]:
    """clean → quality → feedback → PII: what every record must pass, whichever side it is on.

    Interactions routed to the eval bucket pass these too before they become eval items: a
    keyboard-mash reply or a thumbs-down answer is no reference to score a model against, a
    correction is the better reference, and PII has no place in the eval store either.
    """
    return [
        CleanBlock(),
        QualityBlock.model_validate(cfg.quality.model_dump()),
        FeedbackBlock(min_rating=cfg.min_rating, keep_cut=cfg.keep_cut_answers),
        PIIRedactBlock(
            mode=cfg.pii_mode, presidio=cfg.presidio, names=cfg.pii_names, allow=cfg.pii_allow
        ),
    ]


def build_pipeline(cfg: CurateConfig, checker: Checker) -> list[Block]:
    """The record blocks → exact dedup → near dedup → format → decontaminate → validation
    split: the order every dataset version is built in."""
    return [
        *record_blocks(cfg),
        ExactDedupBlock(),
        NearDedupBlock(threshold=cfg.dedup_threshold, ngram=cfg.dedup_ngram),
        FormatBlock(system_prompt=cfg.system_prompt),
        ContaminationBlock(checker),
        ValidationSplitBlock(fraction=cfg.validation_fraction),
    ]


@dataclass
class PipelineResult:
    records: list[Record]
    log: DropLog
    blocks: list[dict[str, Any]]


def redactor(blocks: Sequence[Block] = ()) -> Callable[[Record], Record]:
    """Redaction for rejected records, whatever block dropped them.

    It finds what the pipeline's own PII block finds (names too, where that block looks for
    them), so a rejects file holds no more personal data than a dataset.
    """
    pii = next((b for b in blocks if isinstance(b, PIIRedactBlock)), None)
    block = PIIRedactBlock(mode="redact", detectors=pii.detectors if pii else None)
    if pii is not None:
        block.batch_detectors = pii.batch_detectors

    def redact(record: Record) -> Record:
        out = block.process(record)
        return out if isinstance(out, Record) else record

    return redact


def _counted(records: Iterable[Record], advance: progress.Advance) -> Iterator[Record]:
    for record in records:
        yield record
        advance()


def _through(blocks: Sequence[Block], records: Iterable[Record], log: DropLog) -> Iterable[Record]:
    stream = records
    for block in blocks:
        stream = block.run(stream, log)
    return stream


def run_pipeline(blocks: Sequence[Block], records: Iterable[Record]) -> PipelineResult:
    """Run every block in order; report each block's parameters and counts."""
    log = DropLog(redact=redactor(blocks))
    total = len(records) if isinstance(records, Sized) else None
    with progress.task("curating", total, "records") as advance:
        out = list(_through(blocks, _counted(records, advance), log))
    reports = [
        {
            "name": b.name,
            "params": b.params(),
            "seen": log.seen[b.name],
            "kept": log.kept[b.name],
            "changed": log.changed[b.name],
            "dropped": log.by_block(b.name),
        }
        for b in blocks
    ]
    return PipelineResult(out, log, reports)
