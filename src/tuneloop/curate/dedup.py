"""Exact and near-duplicate removal: the first record of each cluster is kept.

Exact duplicates are records whose normalized content is the same (so case, spacing and
punctuation do not hide a copy); near duplicates are records whose word 5-gram sets have an
exact Jaccard similarity at or above the threshold with an earlier kept record (MinHash-LSH
finds the candidates, see :mod:`tuneloop.minhash.neardup`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from tuneloop.contamination.hashing import Batch, exact_hashes
from tuneloop.curate.base import DropLog
from tuneloop.minhash.neardup import NearDupFinder
from tuneloop.minhash.signatures import MinHasher
from tuneloop.records import Record


def _counted(records: Iterable[Record], log: DropLog, name: str) -> list[Record]:
    out = list(records)
    log.seen[name] += len(out)
    return out


@dataclass(frozen=True)
class ExactDedupBlock:
    name: ClassVar[str] = "exact_dedup"

    def params(self) -> dict[str, Any]:
        return {"key": "normalized content"}

    def run(self, records: Iterable[Record], log: DropLog) -> Iterator[Record]:
        items = _counted(records, log, self.name)
        if not items:
            return
        first: dict[int, str] = {}
        batch = Batch.of([r.content_text for r in items])
        hashes = exact_hashes(batch.buf, batch.offsets)
        for rec, h in zip(items, hashes.tolist(), strict=True):
            if h in first:
                log.drop(rec, self.name, "exact_duplicate", duplicate_of=first[h])
                continue
            first[h] = rec.id
            log.kept[self.name] += 1
            yield rec


@dataclass(frozen=True)
class NearDedupBlock:
    name: ClassVar[str] = "near_dedup"
    threshold: float = 0.8
    ngram: int = 5
    num_perm: int = 128

    def params(self) -> dict[str, Any]:
        hasher = MinHasher(ngram=self.ngram, num_perm=self.num_perm, threshold=self.threshold)
        return hasher.params()

    def run(self, records: Iterable[Record], log: DropLog) -> Iterator[Record]:
        items = _counted(records, log, self.name)
        if not items:
            return
        finder = NearDupFinder(MinHasher(self.ngram, self.num_perm, self.threshold))
        batch = Batch.of([r.content_text for r in items])
        finder.add_packed(batch.buf, batch.offsets)
        result = finder.resolve()
        for k, rec in enumerate(items):
            target = int(result.dup_of[k])
            if target >= 0:
                log.drop(rec, self.name, "near_duplicate", duplicate_of=items[target].id,
                         jaccard=round(float(result.jaccard[k]), 6))  # fmt: skip
                continue
            log.kept[self.name] += 1
            yield rec
