"""The canary's state file, ``serve/canary.json``: written atomically, changed under a lock.

The CLI, the admin API and the server's controller all change it; each change is a
read-modify-write under one file lock, so a step the controller makes cannot overwrite a
``canary stop`` that landed a moment earlier.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from tuneloop.jsonl import atomic_writer
from tuneloop.registry.locks import flock
from tuneloop.workspace import CANARY_LOCK, CANARY_STATE

Status = Literal["running", "promoted", "rolled_back", "stopped"]


@dataclass(frozen=True)
class CanaryState:
    canary_id: str
    version: str
    baseline: str  # the production version (or "base") it is compared with
    weight: float
    step: float
    max_weight: float
    initial_weight: float
    started_unix: float
    weight_since_unix: float
    status: Status = "running"
    failures: int = 0  # failing judgments in a row
    judgments: int = 0
    last_verdict: dict[str, Any] | None = None
    ended_reason: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.status == "running"

    def with_event(self, event: str, **changes: Any) -> CanaryState:
        now = time.time()
        entry = {
            "time": now,
            "event": event,
            **{k: v for k, v in changes.items() if k in ("weight", "status", "ended_reason")},
        }
        return replace(self, **changes, history=[*self.history, entry][-200:])


def new_state(
    version: str, baseline: str, weight: float, step: float, max_weight: float
) -> CanaryState:
    now = time.time()
    return CanaryState(
        canary_id=f"canary-{uuid.uuid4().hex[:12]}",
        version=version,
        baseline=baseline,
        weight=min(weight, max_weight),
        step=step,
        max_weight=max_weight,
        initial_weight=min(weight, max_weight),
        started_unix=now,
        weight_since_unix=now,
        history=[{"time": now, "event": "start", "weight": min(weight, max_weight)}],
    )


def state_path(serve_dir: Path) -> Path:
    return serve_dir / CANARY_STATE


def read_state(serve_dir: Path) -> CanaryState | None:
    path = state_path(serve_dir)
    if not path.is_file():
        return None
    return CanaryState(**json.loads(path.read_text(encoding="utf-8")))


def write_state(serve_dir: Path, state: CanaryState) -> None:
    with atomic_writer(state_path(serve_dir), "w") as fh:
        fh.write(json.dumps(asdict(state), indent=1, sort_keys=True))


@contextmanager
def locked(serve_dir: Path) -> Iterator[None]:
    serve_dir.mkdir(parents=True, exist_ok=True)
    with flock(serve_dir / CANARY_LOCK):
        yield


def update(
    serve_dir: Path, change: Callable[[CanaryState | None], CanaryState | None]
) -> CanaryState | None:
    """Apply ``change`` to the current state under the lock; write what it returns."""
    with locked(serve_dir):
        current = read_state(serve_dir)
        new = change(current)
        if new is not None and new != current:
            write_state(serve_dir, new)
        return new
