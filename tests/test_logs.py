"""The log lines a long-running command writes: text or JSON, a line per event, the request."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from tuneloop import logs
from tuneloop.errors import ConfigError


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    yield out
    logger = logging.getLogger("tuneloop")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


def test_json_lines_carry_the_request_and_the_exception(stream: io.StringIO) -> None:
    logs.configure("json", stream=stream)
    log = logging.getLogger("tuneloop.serve.chat")
    log.info("request %s served", "chatcmpl-1", extra={"request_id": "chatcmpl-1"})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("step failed for %s", "a, b", extra={"request_ids": ["a", "b"]})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "request chatcmpl-1 served"
    assert first["request_id"] == "chatcmpl-1"
    assert first["logger"] == "tuneloop.serve.chat" and first["level"] == "INFO"
    assert first["time"].endswith("Z")
    assert second["request_ids"] == ["a", "b"]
    assert second["exception"] == "RuntimeError" and "boom" in second["traceback"]


def test_text_lines_name_the_request(stream: io.StringIO) -> None:
    logs.configure("text", stream=stream)
    logging.getLogger("tuneloop.serve").warning("slow", extra={"request_id": "r-9"})
    logging.getLogger("tuneloop.serve").warning("no request here")
    first, second = stream.getvalue().splitlines()
    assert first.endswith("WARNING tuneloop.serve [r-9] slow")
    assert second.endswith("WARNING tuneloop.serve no request here")


def test_configuring_again_replaces_the_handler(stream: io.StringIO) -> None:
    other = io.StringIO()
    logs.configure("text", stream=other)
    logs.configure("json", stream=stream)
    logging.getLogger("tuneloop.x").error("once")
    assert other.getvalue() == ""
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["once"]


def test_records_still_reach_the_root_logger(
    stream: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    """An application's (or pytest's) own handler keeps seeing tuneloop's records."""
    logs.configure("json", stream=stream)
    with caplog.at_level(logging.INFO, logger="tuneloop"):
        logging.getLogger("tuneloop.serve").info("seen twice")
    assert [r.getMessage() for r in caplog.records] == ["seen twice"]
    assert len(stream.getvalue().splitlines()) == 1


def test_an_unknown_format_is_one_line() -> None:
    with pytest.raises(ConfigError, match="--log-format 'yaml': use text or json"):
        logs.start_logging("yaml")
