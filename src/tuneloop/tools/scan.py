"""Pass one over a JSONL file: validate every line, keep ids, and hand texts over in chunks."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneloop.errors import InputError
from tuneloop.jsonl import DEFAULT_MAX_LINE_BYTES, check_readable, iter_line_blocks, parse_block
from tuneloop.minhash.signatures import I64Array, U8Array, encode_all, pack_encoded
from tuneloop.records import text_of

ChunkSink = Callable[[U8Array, I64Array], None]
CHUNK = 16384


@dataclass
class Scan:
    """What pass one learned: each record's id (``id`` field, else its 0-based line number).

    ``lines`` keeps the raw lines when the file is small enough, so pass two need not re-read.
    """

    ids: list[Any] = field(default_factory=list)
    lines: list[bytes] | None = None

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


def texts_of(
    path: Path, numbers: Sequence[int], objs: list[dict[str, Any]], text_field: str | None
) -> list[str]:
    """The compared text of every object, or an InputError naming the first without one."""
    key = text_field or "text"
    found = [o.get(key) for o in objs]
    if all(type(t) is str for t in found) and (text_field or not _has_other_shape(objs)):
        return found  # type: ignore[return-value]
    out = []
    for line_no, obj in zip(numbers, objs, strict=True):
        text = text_of(obj, text_field)
        if text is None:
            raise _missing_text(path, line_no, text_field)
        out.append(text)
    return out


def _has_other_shape(objs: list[dict[str, Any]]) -> bool:
    return any("messages" in o or "prompt" in o or "completion" in o for o in objs)


def scan_texts(
    path: Path,
    sink: ChunkSink,
    text_field: str | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    keep_lines_below: int = 512 * 1024 * 1024,
) -> Scan:
    """Validate ``path`` and feed packed texts to ``sink`` a block of lines at a time.

    Raises :class:`InputError` on the first bad line, before anything is written anywhere.
    """
    check_readable(path)
    scan = Scan(lines=[] if path.stat().st_size < keep_lines_below else None)
    for numbers, lines in iter_line_blocks(path):
        objs = parse_block(path, numbers, lines, max_line_bytes)
        found = texts_of(path, numbers, objs, text_field)
        scan.ids.extend(
            obj["id"] if obj.get("id") is not None else n - 1
            for obj, n in zip(objs, numbers, strict=True)
        )
        if scan.lines is not None:
            scan.lines.extend(lines)
        for start in range(0, len(found), CHUNK):
            part = found[start : start + CHUNK]
            sink(*pack_encoded(encode_all(part)))
    if not scan.ids:
        raise InputError(path, None, "no records (only blank lines)", "pass a non-empty JSONL file")
    return scan


def iter_raw_records(path: Path, scan: Scan | None = None) -> Iterator[tuple[int, bytes]]:
    """Pass two: (record index, raw line) in the same order pass one saw them."""
    if scan is not None and scan.lines is not None:
        yield from enumerate(scan.lines)
        return
    index = 0
    for _, lines in iter_line_blocks(path):
        for raw in lines:
            yield index, raw
            index += 1
