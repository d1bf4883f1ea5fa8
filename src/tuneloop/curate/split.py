"""ValidationSplitBlock: hold out part of the training data for eval loss and early stopping.

This validation split is carved from training data only; it is not the evaluation set (that
lives in the eval store, which training code never reads). Records are assigned by their
``group_key``, so all turns of a conversation (or all records of a user) land on one side and
the validation loss is not flattered by near-copies of training examples.

The assignment is a pure hash — sha256 of ``seed``, a NUL separator and the key, read as a
uniform float in [0, 1) — so it is deterministic across runs and machines, and a group stays on
its side as the dataset grows. ``run`` buffers the stream (the block is used once per dataset
version, on data that fits in memory) to enforce ``min_validation``: when the hash puts fewer
groups in validation than that, the train groups with the smallest hash values are moved over,
keeping at least one group for training. Those promoted groups are the only ones whose side can
change in a later, larger dataset version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

from tuneloop.curate.base import DropLog, MapBlock
from tuneloop.errors import ConfigError
from tuneloop.records import Record

Split = Literal["train", "validation"]


def split_point(key: str, seed: str) -> float:
    """A uniform float in [0, 1) fixed by ``seed`` and ``key`` (the NUL keeps the two apart)."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(record_id_or_group_key: str, fraction: float, seed: str) -> Split:
    """Return "validation" for about ``fraction`` of keys, else "train", the same every run."""
    return "validation" if split_point(record_id_or_group_key, seed) < fraction else "train"


def _with_split(record: Record, split: Split) -> Record:
    return record.with_content(meta={**record.meta, "split": split})


@dataclass(frozen=True)
class ValidationSplitBlock(MapBlock):
    """Set ``meta["split"]`` to "train" or "validation" per group; drops nothing."""

    name: ClassVar[str] = "split"
    fraction: float = 0.05
    seed: str = "tuneloop"
    min_validation: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction < 1.0:
            raise ConfigError(f"split: fraction={self.fraction!r}; use a value in [0, 1)")
        if self.min_validation < 0:
            raise ConfigError(f"split: min_validation={self.min_validation!r}; use 0 or more")

    def params(self) -> dict[str, Any]:
        return asdict(self)

    def process(self, record: Record) -> Record:
        """The pure hash split of one record (no ``min_validation``: that needs the whole set)."""
        return _with_split(record, assign_split(record.group_key, self.fraction, self.seed))

    def validation_groups(self, keys: Iterable[str]) -> set[str]:
        """The group keys held out: the hash split, topped up to ``min_validation`` groups."""
        points = {key: split_point(key, self.seed) for key in keys}
        held = {key for key, u in points.items() if u < self.fraction}
        want = min(self.min_validation, len(points) - 1) if self.fraction > 0 else 0
        if len(held) < want:
            rest = sorted((u, key) for key, u in points.items() if key not in held)
            held.update(key for _, key in rest[: want - len(held)])
        return held

    def run(self, records: Iterable[Record], log: DropLog) -> Iterator[Record]:
        buffered = list(records)
        held = self.validation_groups(r.group_key for r in buffered)
        for record in buffered:
            log.seen[self.name] += 1
            log.kept[self.name] += 1
            out = _with_split(record, "validation" if record.group_key in held else "train")
            if out != record:
                log.changed[self.name] += 1
            yield out
