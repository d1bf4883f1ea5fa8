"""Everything a running server holds, built once from the workspace and handed to the routes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneloop.config import ServeConfig
from tuneloop.registry import Registry
from tuneloop.serve.auth import KeyRing
from tuneloop.serve.canary.controller import CanaryController
from tuneloop.serve.follow import AliasFollower
from tuneloop.serve.generation import Backend
from tuneloop.serve.limits import Limiter
from tuneloop.serve.metrics import Metrics
from tuneloop.serve.router import Router
from tuneloop.state.serving_log import LogWriter, ServingLog
from tuneloop.workspace import Workspace


class RecentResponses:
    """Tenant, arm and version of the latest responses: feedback right after one needs no disk."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._items: OrderedDict[str, tuple[str, str, str]] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def remember(self, response_id: str, tenant: str, arm: str, model_id: str) -> None:
        with self._lock:
            self._items[response_id] = (tenant, arm, model_id)
            if len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def get(self, response_id: str) -> tuple[str, str, str] | None:
        with self._lock:
            return self._items.get(response_id)


@dataclass
class Services:
    cfg: ServeConfig
    backend: Backend
    router: Router
    keys: KeyRing
    log: ServingLog
    writer: LogWriter
    metrics: Metrics
    recent: RecentResponses
    limiter: Limiter
    workspace: Workspace  # whose report `/` shows, and whose eval index is current
    serve_dir: Path
    registry: Registry
    new_registry: Callable[[], Registry]  # one per thread that writes to it
    base_sha256: str | None
    watch: tuple[Path, ...] = ()
    follower: AliasFollower | None = None
    controller: CanaryController | None = None
    report_cache: Any = None  # the report page, rendered once per change (serve/pages.py)

    def index_version(self) -> str | None:
        return self.workspace.index_version()


def build_services(
    ws: Workspace,
    backend: Backend,
    new_registry: Callable[[], Registry],
    base_sha256: str | None,
    watch: tuple[Path, ...] = (),
) -> Services:
    cfg = ws.config.serve
    log = ServingLog(ws.store("serving", "serve"))
    metrics = Metrics(backend.stats)
    return Services(
        cfg=cfg,
        backend=backend,
        router=Router(cfg.canary.salt, backend.base_name),
        keys=KeyRing.load(cfg.api_keys),
        log=log,
        writer=log.writer(metrics.background_failures.labels(thread="serving-log").inc),
        metrics=metrics,
        recent=RecentResponses(),
        limiter=Limiter(),
        workspace=ws,
        serve_dir=ws.serve_dir,
        registry=new_registry(),
        new_registry=new_registry,
        base_sha256=base_sha256,
        watch=watch,
    )
