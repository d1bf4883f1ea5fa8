"""Progress of long work: the library says what it is doing, whoever runs it decides how to show it.

Library code wraps a long phase in :func:`task` and calls the function it yields as work gets
done; with no display installed (the library used from Python) that costs a function call. The
CLI installs a display with :func:`shown`: a bar with an ETA on a terminal, and otherwise plain
lines on stderr at a modest rate (a cron job's log, a CI step, a notebook), never on stdout, so
``--json`` output stays clean. ``TUNELOOP_PROGRESS=0`` turns the lines off.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TextIO

Advance = Callable[..., None]
"""``advance(n=1, **fields)``: ``n`` more units done; fields (a loss) are shown beside them."""

EVERY_S = 15.0  # a plain line at most this often per phase (and at its start and end)


class Display(Protocol):
    def start(self, title: str, total: int | None, unit: str) -> Advance: ...

    def end(self, title: str, failed: bool = False) -> None: ...


@dataclass
class _Phase:
    title: str
    total: int | None
    unit: str
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    shown_at: float = 0.0
    fields: dict[str, object] = field(default_factory=dict)

    def line(self, now: float, finished: bool = False, failed: bool = False) -> str:
        spent = now - self.started
        parts = []
        if self.total is not None or self.done:
            parts.append(
                f"{self.done:,}" + (f"/{self.total:,}" if self.total else "") + f" {self.unit}"
            )
        if self.total:
            parts.append(f"{self.done / self.total:.0%}")
        rate = self.done / spent if spent > 0 else 0.0
        if not finished and self.total and 0 < self.done < self.total and rate > 0:
            parts.append(f"ETA {_duration((self.total - self.done) / rate)}")
        parts.append(f"{_duration(spent)}" + ("" if finished else " so far"))
        parts += [f"{k} {v}" for k, v in self.fields.items()]
        stamp = datetime.now().astimezone().isoformat(timespec="seconds")
        ending = "stopped: " if failed else "done: " if finished else ""
        return f"[{stamp}] {self.title}: " + ending + ", ".join(parts)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Lines:
    """Plain progress lines for a stream that is not a terminal: start, every ``every_s``, end."""

    def __init__(self, stream: TextIO | None = None, every_s: float = EVERY_S) -> None:
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.phases: dict[str, _Phase] = {}

    def start(self, title: str, total: int | None, unit: str) -> Advance:
        phase = self.phases[title] = _Phase(title, total, unit)
        self._write(phase, time.monotonic())

        def advance(n: int = 1, **fields: object) -> None:
            phase.done += n
            phase.fields.update(fields)
            now = time.monotonic()
            if now - phase.shown_at >= self.every_s:
                self._write(phase, now)

        return advance

    def end(self, title: str, failed: bool = False) -> None:
        phase = self.phases.pop(title, None)
        if phase is not None:
            self._write(phase, time.monotonic(), finished=True, failed=failed)

    def _write(
        self, phase: _Phase, now: float, finished: bool = False, failed: bool = False
    ) -> None:
        phase.shown_at = now
        self.stream.write(phase.line(now, finished, failed) + "\n")
        self.stream.flush()


_display: Display | None = None


@contextmanager
def task(title: str, total: int | None = None, unit: str = "items") -> Iterator[Advance]:
    """A long phase: yields ``advance(n=1, **fields)``; shown if a display is installed."""
    display = _display
    if display is None:
        yield ignore
        return
    advance = display.start(title, total, unit)
    try:
        yield advance
    except BaseException:  # the phase did not finish: its last line must not say "done"
        display.end(title, failed=True)
        raise
    display.end(title)


def ignore(n: int = 1, **fields: object) -> None:
    del n, fields


@contextmanager
def shown(display: Display | None) -> Iterator[None]:
    """Install ``display`` for the work run inside (None: nothing is shown)."""
    global _display
    before, _display = _display, display
    try:
        yield
    finally:
        _display = before


def enabled() -> bool:
    """Progress is shown unless ``TUNELOOP_PROGRESS=0``."""
    return os.environ.get("TUNELOOP_PROGRESS", "1") != "0"


def default_display(terminal: bool, quiet: bool) -> Display | None:
    """Plain lines off a terminal (unless TUNELOOP_PROGRESS=0); None on a terminal, where the
    CLI draws its own bars, and with ``quiet``."""
    if quiet or terminal or not enabled():
        return None
    return Lines()
