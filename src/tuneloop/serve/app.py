"""The FastAPI app: routes, the OpenAI error shape everywhere, a body size limit, the lifespan.

The lifespan starts the two background threads a server needs, the alias follower (hot swap)
and the canary controller, and stops them, the log writer and the backend on shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from tuneloop.report.collect import collect
from tuneloop.report.page import render
from tuneloop.serve import admin, feedback
from tuneloop.serve.canary.controller import CanaryController
from tuneloop.serve.chat import ChatHandler
from tuneloop.serve.deps import User, principal
from tuneloop.serve.errors import HANDLERS, APIError, responses
from tuneloop.serve.follow import AliasFollower
from tuneloop.serve.pages import add_pages
from tuneloop.serve.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    FeedbackRequest,
    FeedbackResponse,
)
from tuneloop.serve.services import Services
from tuneloop.serve.shapes import TextShape
from tuneloop.state import server_file
from tuneloop.workspace import Workspace

GENERATE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the completion; with stream: true, server-sent events ending in [DONE]",
        "content": {"application/json": {}, "text/event-stream": {}},
    },
    **responses(400, 401, 403, 404, 413, 429, 503),
}
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413, whether or not Content-Length says so."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if (
            declared is not None
            and declared.isascii()
            and declared.isdigit()
            and int(declared) > self.limit
        ):
            await self._refuse(send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message: Message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise APIError(413, self._message(), "body_too_large")
            return message

        try:
            await self.app(scope, limited, send)
        except APIError:
            await self._refuse(send)

    def _message(self) -> str:
        return f"request body over {self.limit} bytes; send a shorter conversation"

    async def _refuse(self, send: Any) -> None:
        response = APIError(413, self._message(), "body_too_large").response()
        await response({"type": "http"}, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _report_html(ws: Workspace) -> str:
    return render(collect(ws))


def _no_422(app: FastAPI) -> None:
    """FastAPI documents a 422 for every body; this server answers validation errors with
    400 in OpenAI's shape, so the document says 400 and nothing else."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(services: Services) -> FastAPI:
    s = services
    chat = ChatHandler(s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        s.follower = AliasFollower(
            s.serve_dir,
            s.registry,
            s.backend,
            s.router,
            s.metrics,
            loop,
            s.base_sha256,
            s.cfg.poll_s,
            s.watch,
        )
        s.follower.start()
        s.follower.kick()
        s.controller = CanaryController(
            s.serve_dir,
            s.new_registry(),
            s.log,
            s.cfg.canary,
            s.writer.flush,
            s.follower.kick,
            s.metrics.background_failures.labels(thread="canary").inc,
        )
        s.controller.start()
        server_file.announce(s.serve_dir)
        try:
            yield
        finally:
            server_file.withdraw(s.serve_dir)
            s.controller.close()
            s.follower.close()
            s.writer.close()
            await s.backend.close()

    app = FastAPI(
        title="tuneloop",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served by pages.py: behind a login, with local assets
        redoc_url=None,
        openapi_url=None,
        description="OpenAI-compatible chat completions over a base model and its "
        "LoRA adapters, with a canary, feedback and an interaction log.",
    )
    app.state.services = s
    for exc_type, handler in HANDLERS.items():
        app.add_exception_handler(exc_type, handler)

    @app.post("/v1/chat/completions", summary="Create a chat completion (OpenAI-compatible)",
              responses=GENERATE)  # fmt: skip
    async def chat_completions(body: ChatCompletionRequest, request: Request, who: User) -> Any:
        return await chat.handle(body, request, who)

    @app.post("/v1/completions", summary="Create a text completion (OpenAI's legacy API)",
              responses=GENERATE)  # fmt: skip
    async def completions(body: CompletionRequest, request: Request, who: User) -> Any:
        return await chat.handle(body, request, who, TextShape())

    @app.get("/v1/models", summary="Served models: aliases, the base, loaded versions",
             responses=responses(401, 403))  # fmt: skip
    async def models(_: User) -> dict[str, Any]:
        return admin.models_body(s)

    @app.get("/v1/models/{model_id}", summary="One served model",
             responses=responses(401, 403, 404))  # fmt: skip
    async def model(model_id: str, _: User) -> dict[str, Any]:
        listed: list[dict[str, Any]] = admin.models_body(s)["data"]
        found = next((m for m in listed if m["id"] == model_id), None)
        if found is None:
            served = ", ".join(m["id"] for m in listed)
            raise APIError(404, f"model {model_id!r} is not served here; choose one of: {served}",
                           "model_not_found", "model")  # fmt: skip
        return found

    @app.api_route(
        "/v1/responses",
        methods=["GET", "POST"],
        include_in_schema=False,
    )
    async def responses_api() -> None:
        raise APIError(
            404,
            "this server speaks OpenAI's chat completions API, not the Responses API: send "
            "POST /v1/chat/completions (openai-agents: set_default_openai_api('chat_completions'))",
            "responses_api_not_supported",
        )

    @app.post(
        "/v1/feedback",
        response_model=FeedbackResponse,
        summary="Thumbs, a rating, a correction or a comment on one response",
        responses=responses(400, 401, 403, 404, 413),
    )
    async def post_feedback(body: FeedbackRequest, who: User) -> Any:
        return await feedback.accept(s, body, who.tenant)

    @app.get(
        "/metrics",
        summary="Prometheus metrics (text); a key unless serve.open_metrics",
        response_class=PlainTextResponse,
        responses=responses(401),
    )
    async def metrics(request: Request) -> Response:
        if s.keys.enabled and not s.cfg.open_metrics:
            principal(request)
        return Response(s.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/healthz", summary="The process is up", responses=responses(401))
    async def healthz(request: Request) -> dict[str, str]:
        if s.keys.enabled and not s.cfg.open_probes:
            principal(request)
        return {"status": "ok"}

    @app.get("/readyz", summary="Ready once production is loaded", responses=responses(401, 503))
    async def readyz(request: Request) -> JSONResponse:
        if s.keys.enabled and not s.cfg.open_probes:
            principal(request)
        state = s.router.state
        body = {
            "ready": state.production is not None,
            "production": state.production.model_id if state.production else None,
            "problems": list(state.problems),
        }
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    admin.add_routes(app, s)
    _no_422(app)
    add_pages(app, s, _report_html)
    app.add_middleware(BodyLimit, limit=s.cfg.max_body_bytes)
    return app
