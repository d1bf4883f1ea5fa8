"""The last line of defence: re-check every record against the current contamination index.

Records were checked at ingest, but the eval set may have grown since. Running the check again
at curation is what lets the dataset carry a contamination certificate naming the exact index
version it was checked against.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tuneloop.contamination.check import METHODS, Checker, strongest
from tuneloop.curate.base import DropLog
from tuneloop.records import Record


@dataclass
class ContaminationBlock:
    checker: Checker
    name: ClassVar[str] = "decontaminate"
    dropped: Counter[str] = field(default_factory=Counter)
    checked: int = 0

    def params(self) -> dict[str, Any]:
        s = self.checker.settings
        return {
            "index_version": self.checker.index.version,
            "ngram": s.ngram,
            "num_perm": s.num_perm,
            "threshold": s.threshold,
            "overlap_n": s.overlap_n,
            "overlap_min_fraction": s.overlap_min_fraction,
            "contain_n": s.contain_n,
            "contain_min_fraction": s.contain_min_fraction,
            "common_items": s.common_items,
            "common_records": s.common_records,
            "semantic": self.checker.embedder is not None,
            "semantic_thresholds": {  # per suite; None: too templated, the check is off for it
                suite: c.threshold for suite, c in sorted(self.checker.index.calibration.items())
            },
        }

    def run(self, records: Iterable[Record], log: DropLog) -> Iterator[Record]:
        items = list(records)
        log.seen[self.name] += len(items)
        self.checked = len(items)
        results = self.checker.check_records(items) if items else []
        for rec, matches in zip(items, results, strict=True):
            best = strongest(matches)
            if best is None:
                log.kept[self.name] += 1
                yield rec
                continue
            self.dropped[best.method] += 1
            log.drop(rec, self.name, "contaminated", **best.evidence())

    def certificate(self) -> dict[str, Any]:
        """What the gate checks: which index version, which methods, how many records."""
        methods = [m for m in METHODS if m != "semantic" or self.checker.embedder is not None]
        return {
            **self.params(),
            "eval_items": len(self.checker.index),
            "methods": methods,
            "records_checked": self.checked,
            "records_dropped": sum(self.dropped.values()),
            "dropped_by_method": dict(self.dropped),
        }
