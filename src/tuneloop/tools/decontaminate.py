"""``tuneloop decontaminate``: drop the records of a JSONL file that overlap an eval file."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuneloop.contamination.check import Checker, Embedder, strongest
from tuneloop.contamination.fields import ItemFields, fields_of_obj, user_turns_of_obj
from tuneloop.contamination.index import IndexSettings, build_index
from tuneloop.contamination.semantic import item_texts
from tuneloop.errors import InputError
from tuneloop.jsonl import (
    DEFAULT_MAX_LINE_BYTES,
    atomic_writer,
    check_readable,
    dumps,
    iter_line_blocks,
    parse_block,
)
from tuneloop.tools.scan import texts_of


@dataclass
class DecontaminateSummary:
    records_in: int = 0
    records_out: int = 0
    flagged: int = 0
    by_method: dict[str, int] = field(default_factory=dict)
    eval_items: int = 0
    threshold: float = 0.8
    ngram: int = 5
    semantic: bool = False  # whether it ran: not for an eval file too templated for it
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ids(numbers: Sequence[int], objs: list[dict[str, Any]]) -> list[Any]:
    return [
        o["id"] if o.get("id") is not None else n - 1 for n, o in zip(numbers, objs, strict=True)
    ]


def load_eval(
    path: Path, settings: IndexSettings, text_field: str | None, embedder: Embedder | None
) -> tuple[Checker, dict[str, Any]]:
    """Index an eval JSONL file in memory; map index keys back to the file's ids.

    An eval id is the ``id`` field, else the 0-based line number.
    """
    check_readable(path)
    ids: list[str] = []
    originals: dict[str, Any] = {}
    texts: list[str] = []
    fields: list[ItemFields] = []
    for numbers, lines in iter_line_blocks(path):
        objs = parse_block(path, numbers, lines, DEFAULT_MAX_LINE_BYTES)
        texts.extend(texts_of(path, numbers, objs, text_field))
        fields.extend(ItemFields() if text_field else fields_of_obj(o) for o in objs)
        for i in _ids(numbers, objs):
            key = f"{len(ids)}"  # positions, not the ids themselves: "1" and 1 may both occur
            ids.append(key)
            originals[key] = i
    if not ids:
        raise InputError(path, None, "no records (only blank lines)", "pass a non-empty JSONL file")
    embeddings = embedder.embed(item_texts(texts, fields)) if embedder is not None else None
    index = build_index(settings, ids, texts, path.name, (), embeddings, fields)
    return Checker(index, embedder), originals


def decontaminate_file(
    in_path: Path,
    against: Path,
    out_path: Path,
    report_path: Path,
    threshold: float = 0.8,
    ngram: int = 5,
    text_field: str | None = None,
    embedder: Embedder | None = None,
) -> DecontaminateSummary:
    """Write the clean records to ``out_path`` and one report line per flagged record."""
    start = time.perf_counter()
    check_readable(in_path)
    settings = IndexSettings(ngram=ngram, threshold=threshold)
    checker, original_ids = load_eval(against, settings, text_field, embedder)
    summary = DecontaminateSummary(
        eval_items=len(checker.index),
        threshold=threshold,
        ngram=ngram,
        semantic=checker.embedder is not None,
    )
    methods: Counter[str] = Counter()
    with atomic_writer(out_path) as out, atomic_writer(report_path) as report:
        for numbers, lines in iter_line_blocks(in_path):
            objs = parse_block(in_path, numbers, lines, DEFAULT_MAX_LINE_BYTES)
            texts = texts_of(in_path, numbers, objs, text_field)
            parts = None if text_field else [user_turns_of_obj(o) for o in objs]
            results = checker.check_batch(texts, parts)
            for rid, raw, matches in zip(_ids(numbers, objs), lines, results, strict=True):
                best = strongest(matches)
                if best is None:
                    out.write(raw + b"\n")
                    continue
                methods[best.method] += 1
                eval_id = original_ids.get(best.eval_id, best.eval_id)
                row = {"id": rid, "eval_id": eval_id, "method": best.method}
                field = {"field": best.field} if best.field else {}
                report.write(dumps({**row, "score": best.score, **field}))
            summary.records_in += len(lines)
        if summary.records_in == 0:
            raise InputError(
                in_path, None, "no records (only blank lines)", "pass a non-empty file"
            )
    summary.flagged = sum(methods.values())
    summary.records_out = summary.records_in - summary.flagged
    summary.by_method = dict(methods)
    summary.seconds = round(time.perf_counter() - start, 3)
    return summary
