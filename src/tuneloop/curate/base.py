"""One interface for every curation block, and the log that keeps every dropped record.

A block takes a stream of records and yields the records it keeps, possibly changed. A record it
does not keep is handed to ``log.drop(record, block, reason, **details)`` — never silently
discarded — so a reader can answer "where was this record dropped, and why?" from the rejects file.
Simple per-record blocks subclass :class:`MapBlock` and implement ``process`` only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from tuneloop.records import Record


@dataclass(frozen=True, slots=True)
class Drop:
    """A block's verdict that a record must not be used, with the reason."""

    reason: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class DropLog:
    """Collects dropped records with their reasons, and counts per block.

    ``redact``, when set, is applied to a dropped record before it is kept: a record dropped
    before the PII block must not carry its PII into the rejects file of a dataset version.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    seen: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    changed: Counter[str] = field(default_factory=Counter)
    redact: Callable[[Record], Record] | None = None

    def drop(self, record: Record, block: str, reason: str, **details: Any) -> None:
        self.counts[f"{block}:{reason}"] += 1
        kept = self.redact(record) if self.redact is not None else record
        self.rows.append(
            {"id": record.id, "block": block, "reason": reason, **details, "record": kept.to_dict()}
        )

    def by_block(self, block: str) -> dict[str, int]:
        prefix = f"{block}:"
        return {k[len(prefix) :]: v for k, v in self.counts.items() if k.startswith(prefix)}


class Block(Protocol):
    """A curation step: a name, its parameters (for the manifest) and a stream transform."""

    name: ClassVar[str]

    def params(self) -> dict[str, Any]: ...

    def run(self, records: Iterable[Record], log: DropLog) -> Iterator[Record]: ...


class MapBlock:
    """A block that looks at one record at a time."""

    name: ClassVar[str] = "map"

    def params(self) -> dict[str, Any]:
        return {}

    def process(self, record: Record) -> Record | Drop:
        raise NotImplementedError

    def run(self, records: Iterable[Record], log: DropLog) -> Iterator[Record]:
        for record in records:
            log.seen[self.name] += 1
            out = self.process(record)
            if isinstance(out, Drop):
                log.drop(record, self.name, out.reason, **out.details)
                continue
            log.kept[self.name] += 1
            if out != record:
                log.changed[self.name] += 1
            yield out
