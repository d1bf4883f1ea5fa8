"""Errors in the OpenAI shape: ``{"error": {"message", "type", "param", "code"}}``.

Clients built on the ``openai`` library turn the status code into an exception class
(``NotFoundError``, ``RateLimitError`` …) and show ``message``; so every message says what to
change, and every failure, including a validation error found by FastAPI, leaves in this shape.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "server_error",
}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """Every failure, in OpenAI's shape."""

    error: ErrorDetail


_SAID = {
    400: "a field is missing, malformed or out of range (named in param)",
    401: "no API key, or one this server does not know",
    403: "the key lacks the scope, or the version may not serve",
    404: "no such model, version, response or route",
    409: "the registry refused the move (the release check, production moved since)",
    413: "the body is over serve.max_body_bytes",
    429: "the queue or this key's limits are full; Retry-After says when to come back",
    503: "production is not loaded yet, or the server is starting",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route really returns, for the OpenAPI document."""
    return {code: {"model": ErrorBody, "description": _SAID[code]} for code in codes}


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        kind = _TYPES.get(
            self.status, "server_error" if self.status >= 500 else "invalid_request_error"
        )
        return {
            "error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    """One line naming every bad field, e.g. ``temperature: Input should be ≤ 2``."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return "the request body is not valid JSON; send a JSON object", None
    parts = [f"{_location(tuple(e['loc']))}: {e['msg']}" for e in errors]
    first = _location(tuple(errors[0]["loc"])) if errors else None
    return "; ".join(parts) or "invalid request", first


async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return exc.response()


async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, param = validation_message(exc)
    return APIError(400, message, "invalid_request", param).response()


async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    hint = {
        404: "no such route; see GET /v1/models and docs/registry-and-serving.md",
        405: "this route does not take that method",
    }.get(exc.status_code, str(exc.detail))
    return APIError(exc.status_code, hint, None, headers=dict(exc.headers or {})).response()


log = logging.getLogger("tuneloop.serve")


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "%s %s failed with %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    metrics = getattr(getattr(request.app.state, "services", None), "metrics", None)
    if metrics is not None:
        metrics.errors.labels("none", "none", "internal_error").inc()
    message = f"internal error ({type(exc).__name__}); the server logged it and keeps serving"
    return APIError(500, message, "internal_error").response()


HANDLERS = {
    APIError: on_api_error,
    RequestValidationError: on_validation_error,
    StarletteHTTPException: on_http_error,
    Exception: on_unexpected,
}
