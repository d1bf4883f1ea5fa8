"""``serve/server.json``: a running server says so, so that a cycle knows to start a canary.

Written at start-up, removed at shutdown. A server killed without shutting down leaves the
file behind, so a reader also checks that the process it names is alive.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from tuneloop.jsonl import atomic_writer
from tuneloop.workspace import SERVER_FILE


def announce(serve_dir: Path) -> None:
    with atomic_writer(serve_dir / SERVER_FILE, "w") as fh:
        fh.write(json.dumps({"pid": os.getpid(), "started_unix": time.time()}))


def withdraw(serve_dir: Path) -> None:
    """Remove the file if it is this process's (a newer server may have replaced it)."""
    path = serve_dir / SERVER_FILE
    with contextlib.suppress(OSError, ValueError, KeyError):
        if json.loads(path.read_text())["pid"] == os.getpid():
            path.unlink()


def server_running(serve_dir: Path) -> bool:
    try:
        pid = int(json.loads((serve_dir / SERVER_FILE).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True
