"""Where the library's log lines go when a long-running command runs: one line per event on
stderr, as text for a person or as JSON for a log shipper (``--log-format json``).

The library only calls ``logging.getLogger("tuneloop.…")``; nothing below the CLI configures
logging, so an application that embeds tuneloop keeps its own handlers. A line names the request
it belongs to where there is one: the server passes ``extra={"request_id": …}`` (its generation
thread serves many requests at once, so the id travels with the record, not with the thread).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Literal

from tuneloop.errors import ConfigError

Format = Literal["text", "json"]
FORMATS: tuple[Format, ...] = ("text", "json")
# Attributes a LogRecord has of its own; anything else was passed in ``extra``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _extra(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


def _utc(record: logging.LogRecord) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """``2026-12-05T19:20:01.123Z ERROR tuneloop.serve.chat [chatcmpl-1f2e] message``."""

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        where = f" [{rid}]" if rid else ""
        line = f"{_utc(record)} {record.levelname} {record.name}{where} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the record's ``extra`` fields
    (request_id, tenant, …) and, for an exception, its type and traceback."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": _utc(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_extra(record))
        if record.exc_info and record.exc_info[0] is not None:
            out["exception"] = record.exc_info[0].__name__
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure` installs, told apart from an application's own."""


def configure(
    fmt: Format = "text", level: int = logging.INFO, stream: IO[str] | None = None
) -> logging.Handler:
    """Send ``tuneloop.*`` records at ``level`` and above to ``stream`` (stderr) in ``fmt``.

    Called again, it replaces the handler it installed before instead of adding a second one.
    Records still propagate, so a handler on the root logger (pytest's, an application's) sees
    them too.
    """
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: use one of {', '.join(FORMATS)}")
    logger = logging.getLogger("tuneloop")
    for old in [h for h in logger.handlers if isinstance(h, _Handler)]:
        logger.removeHandler(old)
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


def start_logging(fmt: str) -> logging.Handler:
    """:func:`configure` for a command's ``--log-format`` (or ``serve.log_format``): a wrong
    name is one line naming the choices (exit code 2), not a traceback."""
    if fmt not in FORMATS:
        raise ConfigError(f"--log-format {fmt!r}: use {' or '.join(FORMATS)}")
    return configure(fmt)
