"""Pass one over a JSONL file: validate every line, keep ids, and hand texts over in chunks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneloop.errors import InputError
from tuneloop.jsonl import (
    DEFAULT_MAX_LINE_BYTES,
    check_readable,
    iter_line_blocks,
    iter_lines,
    parse_block,
)
from tuneloop.minhash.signatures import I64Array, U8Array, encode_for_kernels, pack_encoded
from tuneloop.records import text_of

ChunkSink = Callable[[U8Array, I64Array], None]
CHUNK = 16384


@dataclass
class Scan:
    """What pass one learned: each record's id (``id`` field, else its 0-based line number)."""

    ids: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


def _missing_text(path: Path, line_no: int, text_field: str | None) -> InputError:
    if text_field:
        return InputError(path, line_no, f"no string field '{text_field}'", "check --text-field")
    return InputError(
        path,
        line_no,
        "no text found",
        "give 'messages', 'prompt' and 'completion', or 'text' (or pass --text-field)",
    )


def scan_texts(
    path: Path,
    sink: ChunkSink,
    text_field: str | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    texts: list[str] | None = None,
) -> Scan:
    """Validate ``path`` and feed packed texts to ``sink`` in chunks of ``CHUNK`` records.

    Raises :class:`InputError` on the first bad line, before anything is written anywhere.
    ``texts``, when given, also receives every text (for callers that need them again).
    """
    check_readable(path)
    scan = Scan()
    for numbers, lines in iter_line_blocks(path, CHUNK):
        objs = parse_block(path, numbers, lines, max_line_bytes)
        found = [text_of(obj, text_field) for obj in objs]
        for line_no, text in zip(numbers, found, strict=True):
            if text is None:
                raise _missing_text(path, line_no, text_field)
        scan.ids.extend(
            obj["id"] if obj.get("id") is not None else n - 1
            for obj, n in zip(objs, numbers, strict=True)
        )
        sink(*pack_encoded([encode_for_kernels(t) for t in found]))  # type: ignore[arg-type]
        if texts is not None:
            texts.extend(found)  # type: ignore[arg-type]
    if not scan.ids:
        raise InputError(path, None, "no records (only blank lines)", "pass a non-empty JSONL file")
    return scan


def iter_raw_records(path: Path) -> Iterator[tuple[int, bytes]]:
    """Pass two: (record index, raw line) in the same order pass one saw them."""
    for index, (_, raw) in enumerate(iter_lines(path)):
        yield index, raw
