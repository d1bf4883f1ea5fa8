"""A sensitive span found in a text: what every PII detector returns (the structured kinds in
``pii``, names in ``persons``, street addresses in ``addresses``), kept apart so that the
detectors and the block that runs them need not import each other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    """One sensitive span: ``text[start:end] == text`` of the string it was found in."""

    kind: str
    start: int
    end: int
    text: str

    def __repr__(self) -> str:
        # Findings end up in tracebacks and debug output: never show the value itself.
        return f"Finding(kind={self.kind!r}, start={self.start}, end={self.end})"
