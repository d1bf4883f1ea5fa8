"""Reading JSONL with line-numbered errors, and writing files atomically.

Readers stream: memory does not grow with the file. Every problem becomes an
:class:`~tuneloop.errors.InputError` naming the file, the 1-based line and the fix. Writers
write to a temporary file beside the target and rename it into place only when everything
succeeded, so a failed run never leaves a half-written output.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from tuneloop.encryption import files as sealed_files
from tuneloop.encryption.keys import key_for
from tuneloop.errors import InputError

DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024


def check_readable(path: Path) -> None:
    """Fail early, in one line, when ``path`` is missing, a folder, or empty."""
    if not path.exists():
        raise InputError(path, None, "file not found", "check the path")
    if path.is_dir():
        raise InputError(path, None, "is a folder, not a JSONL file", "pass a .jsonl file")
    if path.stat().st_size == 0:
        raise InputError(path, None, "file is empty", "pass a JSONL file with one record per line")


def parse_line(path: Path, line_no: int, raw: bytes, max_line_bytes: int) -> dict[str, Any]:
    """Parse one JSONL line into an object, or raise an error that says how to fix it."""
    if len(raw) > max_line_bytes:
        raise InputError(
            path,
            line_no,
            f"record is {len(raw) / 1e6:.1f} MB, over the {max_line_bytes / 1e6:.1f} MB limit",
            "split or shorten the record, or raise the limit with --max-record-bytes",
        )
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as uexc:
            raise InputError(
                path,
                line_no,
                f"not valid UTF-8 (byte {uexc.start})",
                "re-encode the file as UTF-8",
            ) from None
        fix = "fix or remove this line (or skip bad lines with --skip-bad-lines)"
        if not raw.lstrip().startswith((b"{", b"[")) and (b"," in raw or b"\t" in raw):
            fix = "this looks like a CSV/TSV table: give the file a .csv or .tsv name"
        raise InputError(path, line_no, f"invalid JSON ({exc.msg})", fix) from None
    if not isinstance(obj, dict):
        raise InputError(
            path,
            line_no,
            f"expected a JSON object, got {type(obj).__name__}",
            "write one object per line",
        )
    return obj


def _clean_lines(lines: list[bytes], first: int) -> tuple[Sequence[int], list[bytes]]:
    """Drop blank lines and trailing CRs, keeping each line's number (fast when there are none)."""
    if all(lines) and not any(raw[-1:] == b"\r" or raw.isspace() for raw in lines):
        return range(first, first + len(lines)), lines
    numbers, kept = [], []
    for k, raw in enumerate(lines):
        if raw and not raw.isspace():
            numbers.append(first + k)
            kept.append(raw[:-1] if raw[-1:] == b"\r" else raw)
    return numbers, kept


def iter_line_blocks(
    path: Path, block_size: int = 1 << 24
) -> Iterator[tuple[Sequence[int], list[bytes]]]:
    """Non-blank lines a block of the file at a time: (1-based line numbers, raw lines).

    Splitting whole blocks in C, not line by line in Python, is most of what makes reading
    fast; a block holds about ``block_size`` bytes of lines.
    """
    line_no = 1
    rest = b""
    with _open_plain(path) as fh:
        while block := fh.read(block_size):
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            numbers, kept = _clean_lines(lines, line_no)
            line_no += len(lines)
            if kept:
                yield numbers, kept
    numbers, kept = _clean_lines([rest], line_no) if rest else ((), [])
    if kept:
        yield numbers, kept


def _open_plain(path: Path) -> IO[bytes]:
    """``path`` opened for reading; a sealed file is decrypted (whole, in memory) first."""
    fh = path.open("rb")
    if sealed_files.is_sealed(fh.read(len(sealed_files.MAGIC))):
        fh.close()
        return io.BytesIO(sealed_files.read_bytes(path))
    fh.seek(0)
    return fh


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, raw line without newline) for non-blank lines."""
    for numbers, lines in iter_line_blocks(path):
        yield from zip(numbers, lines, strict=True)


def parse_block(
    path: Path, numbers: Sequence[int], lines: list[bytes], max_line_bytes: int
) -> list[dict[str, Any]]:
    """Parse many lines in one call (fast); on any problem, find and report the first bad line."""
    if max(map(len, lines)) <= max_line_bytes:
        try:
            objs = orjson.loads(b"[" + b",".join(lines) + b"]")
        except orjson.JSONDecodeError:
            objs = None
        if objs is not None and len(objs) == len(lines) and all(type(o) is dict for o in objs):
            return objs  # type: ignore[no-any-return]
    return [parse_line(path, n, raw, max_line_bytes) for n, raw in zip(numbers, lines, strict=True)]


def iter_jsonl(
    path: Path,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    bad: list[dict[str, Any]] | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based line number, object) for every record of a JSONL file. With ``bad`` (a
    list), a line that cannot be parsed is appended to it (:func:`skipped`) instead of raising."""
    check_readable(path)
    for line_no, raw in iter_lines(path):
        try:
            yield line_no, parse_line(path, line_no, raw, max_line_bytes)
        except InputError as exc:
            if bad is None:
                raise
            bad.append(skipped(exc))


def skipped(exc: InputError) -> dict[str, Any]:
    """A line left out of a read: its number, the problem, and the whole one-line error."""
    return {"line": exc.line, "problem": exc.problem, "error": str(exc)}


def dumps(obj: Any) -> bytes:
    """One JSONL line (with its newline)."""
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextlib.contextmanager
def atomic_writer(path: Path, mode: str = "wb", sealed: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; rename it to ``path`` only if the block succeeds.

    With ``sealed``, what is written is encrypted (see :mod:`tuneloop.encryption.files`) when
    ``path`` lies in an encrypted workspace: for files that hold user text.
    """
    if sealed and key_for(path) is not None:
        buffer: io.BytesIO | io.StringIO = io.BytesIO() if "b" in mode else io.StringIO()
        yield buffer
        data = buffer.getvalue()
        plain = data if isinstance(data, bytes) else data.encode("utf-8")
        with atomic_writer(path, "wb") as fh:
            fh.write(sealed_files.seal_for(path, plain))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    Path(tmp).chmod(0o666 & ~_umask())
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(
    path: Path, rows: Iterator[dict[str, Any]] | list[dict[str, Any]], sealed: bool = False
) -> int:
    """Write ``rows`` atomically as JSONL; return how many were written."""
    count = 0
    with atomic_writer(path, sealed=sealed) as fh:
        for row in rows:
            fh.write(dumps(row))
            count += 1
    return count


def write_json(path: Path, obj: Any) -> None:
    """Write one JSON document atomically (indented, for people reading it)."""
    with atomic_writer(path) as fh:
        fh.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
        fh.write(b"\n")


def read_json(path: Path) -> Any:
    return orjson.loads(sealed_files.read_bytes(path))
