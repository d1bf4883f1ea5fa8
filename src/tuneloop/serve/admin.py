"""The model list, and the admin routes: canary, promote, rollback, adapter loads.

Admin actions change the registry (the source of truth the CLI also changes) and then make
the follower look at it at once, so the answer to the request already reflects the move.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI

from tuneloop.errors import TuneloopError
from tuneloop.registry import Registry, release
from tuneloop.registry.core import ProductionMovedError, UnknownVersionError
from tuneloop.registry.release import ReleaseRefusedError, require
from tuneloop.serve.auth import Principal
from tuneloop.serve.canary import actions
from tuneloop.serve.canary.controller import judge_now
from tuneloop.serve.deps import Admin, AdminUser
from tuneloop.serve.errors import APIError, responses
from tuneloop.serve.protocol import CanaryStartRequest, RollbackRequest, VersionRequest
from tuneloop.serve.router import BASE
from tuneloop.serve.services import Services
from tuneloop.state.canary import read_state

# A registry refusal, as the status and code the admin API answers with.
REFUSALS: tuple[tuple[type[TuneloopError], int, str], ...] = (
    (UnknownVersionError, 404, "version_not_found"),
    (ReleaseRefusedError, 409, "release_refused"),
    (ProductionMovedError, 409, "production_moved"),
    (TuneloopError, 409, "registry_refused"),
)


def models_body(s: Services) -> dict[str, Any]:
    state, base = s.router.state, s.backend.base_name
    created = int(time.time())

    def entry(
        model_id: str, version: str | None, parent: str | None, sha: str | None
    ) -> dict[str, Any]:
        return {
            "id": model_id,
            "object": "model",
            "created": created,
            "owned_by": "tuneloop",
            "parent": parent,
            "version": version,
            "adapter_sha256": sha,
        }

    rows = [entry(BASE, BASE, None, None)]
    if state.production is not None:
        p = state.production
        rows.insert(0, entry("production", p.model_id, base if p.adapter else None, p.sha256))
    if state.canary is not None:
        t = state.canary.target
        rows.append(entry("canary", t.model_id, base, t.sha256))
    for target in sorted(state.loaded.values(), key=lambda t: int(t.version)):
        rows.append(entry(target.model_id, target.model_id, base, target.sha256))
    return {"object": "list", "data": rows}


def _state_body(s: Services) -> dict[str, Any]:
    state = s.router.state
    canary = read_state(s.serve_dir)
    return {
        "aliases": s.registry.aliases(),
        "serving": {
            "production": state.production.model_id if state.production else None,
            "canary": state.canary.target.model_id if state.canary else None,
            "canary_weight": state.canary.weight if state.canary else 0.0,
            "loaded": sorted(t.model_id for t in state.loaded.values()),
        },
        "canary": asdict(canary) if canary else None,
        "problems": list(state.problems),
    }


def _as(s: Services, who: Principal) -> Registry:
    """The registry, with moves audited as the API key that made them (never its secret)."""
    return s.registry.acting_as(f"key:{who.tenant}" if s.keys.enabled else "local-caller")


async def _run(s: Services, fn: Callable[[], Any]) -> dict[str, Any]:
    """Do a registry move off the event loop, follow it at once, and say what is served now."""

    def move() -> dict[str, Any]:
        try:
            fn()
        except TuneloopError as exc:
            status, code = next((st, c) for kind, st, c in REFUSALS if isinstance(exc, kind))
            raise APIError(status, str(exc), code) from None
        if s.follower is not None:
            s.follower.sync()
        return _state_body(s)

    return await asyncio.to_thread(move)


def add_routes(app: FastAPI, s: Services) -> None:
    guard = Admin  # every route below needs the admin scope
    moves = responses(400, 401, 403, 404, 409)

    @app.get("/admin/state", dependencies=guard, summary="Aliases, what is served, the canary",
             responses=responses(401, 403))  # fmt: skip
    async def get_state() -> dict[str, Any]:
        return await asyncio.to_thread(_state_body, s)

    @app.post("/admin/canary", summary="Start a canary for a version", responses=moves)
    async def start_canary(body: CanaryStartRequest, who: AdminUser) -> dict[str, Any]:
        registry, index = _as(s, who), s.index_version()
        return await _run(
            s,
            lambda: actions.start(
                s.serve_dir, registry, body.version, body.weight, body.step, body.max_weight,
                index, body.force,
            ),
        )  # fmt: skip

    @app.delete("/admin/canary", dependencies=guard, summary="Stop the canary", responses=moves)
    async def stop_canary() -> dict[str, Any]:
        return await _run(s, lambda: actions.stop(s.serve_dir, s.registry, "stopped by an admin"))

    @app.get("/admin/canary", dependencies=guard, summary="The canary's numbers and verdict",
             responses=responses(401, 403))  # fmt: skip
    async def canary_status() -> dict[str, Any]:
        state = read_state(s.serve_dir)
        if state is None or not state.running:
            return {"running": False, "canary": asdict(state) if state else None}

        def judged() -> dict[str, Any]:
            s.writer.flush()  # waits for the log thread: off the event loop
            return judge_now(state, s.log, s.cfg.canary).verdict.to_dict()

        verdict = await asyncio.to_thread(judged)
        return {"running": True, "canary": asdict(state), "verdict": verdict}

    @app.post("/admin/promote", summary="Move production to a version, if it may serve",
              responses=moves)  # fmt: skip
    async def promote(body: VersionRequest, who: AdminUser) -> dict[str, Any]:
        registry, index = _as(s, who), s.index_version()
        return await _run(s, lambda: release.promote(registry, body.version, index, body.force))

    @app.post(
        "/admin/rollback",
        summary="Move production back to previous (or to a version); not a toggle",
        responses=moves,
    )
    async def rollback(who: AdminUser, body: RollbackRequest | None = None) -> dict[str, Any]:
        b, registry = body or RollbackRequest(), _as(s, who)
        return await _run(
            s, lambda: release.rollback(registry, b.to, b.expected_production, b.force)
        )

    @app.post("/admin/adapters", summary="Load a version to serve by name, if it may serve",
              responses={**moves, **responses(503)})  # fmt: skip
    async def load(body: VersionRequest, who: AdminUser) -> dict[str, Any]:
        if s.follower is None:
            raise APIError(503, "the server is still starting; retry", "not_ready")
        follower, registry = s.follower, _as(s, who)

        def pin() -> None:
            mv = require(registry, body.version, None, f"loading {body.version}", body.force,
                         fresh=False)  # fmt: skip
            follower.pin(mv.version)

        return await _run(s, pin)
