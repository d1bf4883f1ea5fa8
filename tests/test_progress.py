"""Progress of long work: plain lines off a terminal, at a modest rate, never on stdout."""

from __future__ import annotations

import io
import re

import pytest

from tuneloop import progress


def test_lines_show_start_end_and_a_modest_rate() -> None:
    stream = io.StringIO()
    with (
        progress.shown(progress.Lines(stream, every_s=3600)),
        progress.task("scoring", 500, "items") as advance,
    ):
        for _ in range(500):
            advance()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines  # the start and the end: no line per item
    assert re.search(r"scoring: 0/500 items, 0%, 0 s so far$", lines[0]), lines[0]
    assert re.search(r"scoring: done: 500/500 items, 100%", lines[1]), lines[1]


def test_every_update_when_the_rate_allows_with_an_eta_and_fields() -> None:
    stream = io.StringIO()
    with (
        progress.shown(progress.Lines(stream, every_s=0)),
        progress.task("training", 4, "steps") as advance,
    ):
        advance(1, loss="2.5000")
    line = stream.getvalue().splitlines()[1]
    assert re.search(r"training: 1/4 steps, 25%, ETA \d+ s, \d+ s so far, loss 2.5000$", line)


def test_nothing_is_shown_without_a_display_and_a_total_is_optional() -> None:
    with progress.task("loading") as advance:  # the library alone: silent, and cheap
        advance()
    stream = io.StringIO()
    with progress.shown(progress.Lines(stream, every_s=0)), progress.task("loading") as advance:
        advance()
    assert "loading: 0 s so far" in stream.getvalue()  # no count before any
    assert "loading: done: 1 items, 0 s" in stream.getvalue()


def test_the_default_display_follows_the_terminal_and_the_switch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert isinstance(progress.default_display(terminal=False, quiet=False), progress.Lines)
    assert progress.default_display(terminal=True, quiet=False) is None  # the CLI draws bars
    assert progress.default_display(terminal=False, quiet=True) is None
    monkeypatch.setenv("TUNELOOP_PROGRESS", "0")
    assert progress.default_display(terminal=False, quiet=False) is None


def test_a_phase_that_fails_is_not_called_done() -> None:
    stream = io.StringIO()
    with (
        pytest.raises(OSError),
        progress.shown(progress.Lines(stream, every_s=3600)),
        progress.task("loading the base model") as advance,
    ):
        advance()
        raise OSError("no such model")
    last = stream.getvalue().splitlines()[-1]
    assert "loading the base model: stopped: 1 items" in last and "done" not in last
