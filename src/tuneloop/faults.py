"""Crash points for recovery tests: ``TUNELOOP_FAULT=NAME`` kills the process at point NAME.

Recovery code is only as good as the crashes it was tested against, and a crash at the worst
moment (outputs written, completion marker not yet) cannot be produced reliably from outside
the process. So the few places where an interruption matters call :func:`point`; with the
variable unset (always, outside tests) it is one dictionary lookup. The kill is SIGKILL, as
``kill -9`` or the OOM killer would do it: no ``finally`` block, no flush, no atexit handler.
"""

from __future__ import annotations

import os
import signal

ENV_VAR = "TUNELOOP_FAULT"


def point(name: str) -> None:
    """Die here, at once, when ``$TUNELOOP_FAULT`` names this point."""
    if os.environ.get(ENV_VAR) == name:
        os.kill(os.getpid(), signal.SIGKILL)
