"""``POST /v1/chat/completions``: route, queue, stream or collect, then log and count.

Every request ends in exactly one serving-log row and one ``tuneloop_requests`` count, whether
it finished, failed, or its client went away, and releases its adapter: the ``finally`` of
:meth:`ChatHandler._run` is the one place that happens.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from tuneloop.curate.quality import alpha_frac, top_ngram_frac
from tuneloop.serve.errors import APIError
from tuneloop.serve.generation import (
    Delta,
    EventStream,
    Failed,
    Finished,
    GenerationRequest,
    PromptTooLongError,
    QueueFullError,
    SamplingParams,
)
from tuneloop.serve.log import ResponseRow
from tuneloop.serve.protocol import (
    ChatCompletionRequest,
    chunk_body,
    completion_body,
    new_id,
    usage_of,
)
from tuneloop.serve.router import Routed
from tuneloop.serve.services import Services

USER_HEADER, CONVERSATION_HEADER = "x-tuneloop-user", "x-tuneloop-conversation"


def degenerate(text: str) -> bool:
    """An answer no user wants: empty, mostly one repeated phrase, or mostly not text."""
    stripped = text.strip()
    if not stripped:
        return True
    if len(stripped) >= 40 and top_ngram_frac(stripped) > 0.5:
        return True
    return len(stripped) >= 20 and alpha_frac(stripped) < 0.3


@dataclass
class _Outcome:
    """What happened to one request, filled in as its events arrive."""

    started: float
    text: str = ""
    ttft: float | None = None
    finish: Finished | None = None
    error: str | None = None
    parts: list[str] = field(default_factory=list)


class ChatHandler:
    def __init__(self, services: Services) -> None:
        self.s = services

    async def handle(self, body: ChatCompletionRequest, request: Request, tenant: str) -> Any:
        started = time.perf_counter()
        rid = new_id("chatcmpl")
        user = body.user or request.headers.get(USER_HEADER)
        conversation = request.headers.get(CONVERSATION_HEADER) or (body.metadata or {}).get(
            "conversation_id"
        )
        routed = self.s.router.route(body.model, f"{tenant}:{user}" if user else rid)
        t = time.perf_counter()
        gen = self._prepare(body, rid, routed)
        tokenizing = time.perf_counter() - t  # the backend's work, not the router's
        self.s.router.acquire(routed.target)
        try:
            stream = self.s.backend.submit(gen)
        except QueueFullError as exc:
            self.s.router.release(routed.target)
            self.s.metrics.rejected.labels(code="queue_full").inc()
            raise APIError(
                429,
                f"the server is busy ({self.s.backend.stats().waiting} requests "
                f"waiting); retry after {exc.retry_after:.0f} s",
                "queue_full",
                headers={"Retry-After": f"{exc.retry_after:.0f}"},
            ) from None
        self.s.metrics.router.observe(time.perf_counter() - started - tokenizing)
        context = _Context(rid, tenant, user, conversation, routed, gen, stream, body, started)
        headers = {
            "x-tuneloop-arm": routed.arm,
            "x-tuneloop-model-version": routed.target.model_id,
            "x-request-id": rid,
        }
        if body.stream:
            return StreamingResponse(
                self._sse(context), media_type="text/event-stream", headers=headers
            )
        return await self._complete(context, request, headers)

    def _prepare(self, body: ChatCompletionRequest, rid: str, routed: Routed) -> GenerationRequest:
        limit = body.limit(self.s.cfg.default_max_tokens)
        context = self.s.backend.context_length
        if limit >= context:
            raise APIError(
                400,
                f"max_tokens {limit} is not below this model's context of "
                f"{context} tokens; ask for fewer",
                "invalid_max_tokens",
                "max_tokens",
            )
        params = SamplingParams(limit, body.temperature, body.top_p, body.seed, body.stop_list())
        messages = tuple({"role": m.role, "content": m.text()} for m in body.messages)
        request = GenerationRequest(rid, messages, routed.target.adapter, params)
        try:
            return self.s.backend.prepare(request)
        except PromptTooLongError as exc:
            raise APIError(400, str(exc), "context_length_exceeded", "messages") from None

    async def _complete(self, c: _Context, request: Request, headers: dict[str, str]) -> Any:
        outcome = _Outcome(c.started)
        try:
            async for event in c.stream:
                self._apply(outcome, event)
                if await request.is_disconnected():
                    c.stream.cancel()
        finally:
            self._record(c, outcome)
        if outcome.error is not None:
            raise APIError(500, outcome.error, "generation_failed")
        f = outcome.finish
        assert f is not None
        body = completion_body(
            c.rid,
            c.routed.target.model_id,
            outcome.text,
            f.reason,
            usage_of(f.prompt_tokens, f.completion_tokens),
            c.routed.target.fingerprint,
        )
        return JSONResponse(body, headers=headers)

    async def _sse(self, c: _Context) -> AsyncIterator[str]:
        outcome = _Outcome(c.started)
        model, fp = c.routed.target.model_id, c.routed.target.fingerprint
        include_usage = bool(c.body.stream_options and c.body.stream_options.include_usage)
        try:
            yield _data(chunk_body(c.rid, model, fp, {"role": "assistant", "content": ""}))
            async for event in c.stream:
                self._apply(outcome, event)
                if isinstance(event, Delta) and event.text:
                    yield _data(chunk_body(c.rid, model, fp, {"content": event.text}))
            if outcome.error is not None:
                yield _data(
                    {"error": APIError(500, outcome.error, "generation_failed").body()["error"]}
                )
            elif outcome.finish is not None:
                f = outcome.finish
                yield _data(chunk_body(c.rid, model, fp, {}, f.reason))
                if include_usage:
                    usage = usage_of(f.prompt_tokens, f.completion_tokens)
                    yield _data(chunk_body(c.rid, model, fp, None, usage=usage))
            yield "data: [DONE]\n\n"
        finally:  # also when the client disconnects: Starlette cancels this generator
            if outcome.finish is None and outcome.error is None:
                c.stream.cancel()
            self._record(c, outcome)

    @staticmethod
    def _apply(outcome: _Outcome, event: object) -> None:
        if isinstance(event, Delta):
            if outcome.ttft is None:
                outcome.ttft = time.perf_counter() - outcome.started
            outcome.parts.append(event.text)
        elif isinstance(event, Finished):
            outcome.finish = event
            outcome.text = "".join(outcome.parts)
            if outcome.ttft is None:
                outcome.ttft = time.perf_counter() - outcome.started
        elif isinstance(event, Failed):
            outcome.error = event.message

    def _record(self, c: _Context, o: _Outcome) -> None:
        """One log row and one count per request, and the adapter released."""
        self.s.router.release(c.routed.target)
        latency = time.perf_counter() - c.started
        arm, version = c.routed.arm, c.routed.target.model_id
        cancelled = (o.finish is not None and o.finish.reason == "cancelled") or (
            o.finish is None and o.error is None
        )
        status = "error" if o.error is not None else "cancelled" if cancelled else "ok"
        m = self.s.metrics
        m.requests.labels(arm, version, status).inc()
        if status == "error":
            m.errors.labels(arm, version, "generation_failed").inc()
        if status == "ok" and o.finish is not None:
            m.latency.labels(arm, version).observe(latency)
            if o.ttft is not None:
                m.ttft.labels(arm, version).observe(o.ttft)
            m.tokens.labels(arm, version, "prompt").inc(o.finish.prompt_tokens)
            m.tokens.labels(arm, version, "completion").inc(o.finish.completion_tokens)
        f = o.finish
        row = ResponseRow(
            response_id=c.rid,
            tenant=c.tenant,
            messages=list(c.gen.messages),
            arm=arm,
            model_version=c.routed.target.version,
            status=status,
            answer=o.text if status == "ok" else None,
            error=o.error,
            finish_reason=f.reason if f else None,
            user_id=c.user,
            conversation_id=c.conversation,
            adapter_sha256=c.routed.target.sha256,
            canary_id=c.routed.canary_id,
            latency_s=latency,
            ttft_s=o.ttft,
            prompt_tokens=len(c.gen.prompt_ids) or None,
            completion_tokens=f.completion_tokens if f else None,
            degenerate=status == "ok" and degenerate(o.text),
        )
        self.s.recent.remember(c.rid, c.tenant, arm, version)
        self.s.writer.put(row)


@dataclass
class _Context:
    rid: str
    tenant: str
    user: str | None
    conversation: str | None
    routed: Routed
    gen: GenerationRequest
    stream: EventStream
    body: ChatCompletionRequest
    started: float


def _data(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"
