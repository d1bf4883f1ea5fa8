"""``POST /v1/chat/completions`` and ``/v1/completions``: route, queue, stream or collect, then
log and count (what differs between the two is in ``serve/shapes.py``).

Every request ends in exactly one serving-log row and one ``tuneloop_requests`` count, whether
it finished, failed, or its client went away, and releases its adapter: the ``finally`` of
:meth:`ChatHandler._complete` and :meth:`ChatHandler._sse` is the one place that happens. A
request for ``n`` choices is ``n`` rows of the batch (seeded ``seed``, ``seed + 1`` …); the
serving log keeps its first choice, the one feedback on the response id is about.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from tuneloop.curate.quality import alpha_frac, top_ngram_frac
from tuneloop.serve.auth import Principal
from tuneloop.serve.errors import APIError
from tuneloop.serve.generation import (
    Delta,
    Event,
    EventStream,
    Failed,
    Finished,
    GenerationRequest,
    InvalidRequestError,
    PromptTooLongError,
    QueueFullError,
    TokenLogprob,
)
from tuneloop.serve.limits import Ticket, check_request
from tuneloop.serve.protocol import SamplingRequest, new_id, usage_of
from tuneloop.serve.router import Routed
from tuneloop.serve.services import Services
from tuneloop.serve.shapes import ChatShape, Shape, params_of
from tuneloop.state.serving_log import ResponseRow

USER_HEADER, CONVERSATION_HEADER = "x-tuneloop-user", "x-tuneloop-conversation"
ROUTING_HEADER = "x-tuneloop-routing"
log = logging.getLogger("tuneloop.serve.chat")


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
    """What happened to one choice, filled in as its events arrive."""

    started: float
    text: str = ""
    ttft: float | None = None
    finish: Finished | None = None
    error: str | None = None
    parts: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)

    def apply(self, event: Event) -> None:
        if isinstance(event, Delta):
            if self.ttft is None:
                self.ttft = time.perf_counter() - self.started
            self.parts.append(event.text)
            self.logprobs.extend(event.logprobs)
        elif isinstance(event, Finished):
            self.finish = event
            self.text = "".join(self.parts)
            if self.ttft is None:
                self.ttft = time.perf_counter() - self.started
        elif isinstance(event, Failed):
            self.error = event.message

    @property
    def ended(self) -> bool:
        return self.finish is not None or self.error is not None


def routing_key(tenant: str, user: str | None, conversation: str | None) -> tuple[str, str]:
    """What keeps a request on its canary arm: its user, else its conversation, else nothing
    (a random arm per request), and which of the three it was."""
    if user:
        return f"{tenant}:{user}", "user"
    if conversation:
        return f"{tenant}:conversation:{conversation}", "conversation"
    return new_id("random"), "random"


class ChatHandler:
    """Routes, queues, streams or collects, then logs and counts one request of either shape."""

    def __init__(self, services: Services) -> None:
        self.s = services

    async def handle(
        self, body: SamplingRequest, request: Request, who: Principal, shape: Shape | None = None
    ) -> Any:
        shape, tenant = shape or ChatShape(), who.tenant
        started = time.perf_counter()
        rid = new_id(shape.id_prefix)
        user = body.user or request.headers.get(USER_HEADER)
        conversation = request.headers.get(CONVERSATION_HEADER) or (body.metadata or {}).get(
            "conversation_id"
        )
        key, routing = routing_key(tenant, user, conversation)
        routed = self.s.router.route(body.model, key)
        t = time.perf_counter()
        gens = self._prepare(body, shape, rid, routed, who)
        tokenizing = time.perf_counter() - t  # the backend's work, not the router's
        ticket = self._admit(who, gens)
        try:
            streams = self._submit(gens, routed)
        except APIError:
            self.s.limiter.done(ticket, 0)
            raise
        self.s.metrics.router.observe(time.perf_counter() - started - tokenizing)
        context = _Context(rid, tenant, user, conversation, routed, gens, streams, body, started,
                           shape, ticket)  # fmt: skip
        headers = {
            "x-tuneloop-arm": routed.arm,
            "x-tuneloop-model-version": routed.target.model_id,
            ROUTING_HEADER: routing,
            "x-request-id": rid,
        }
        if body.stream:
            return StreamingResponse(
                self._sse(context), media_type="text/event-stream", headers=headers
            )
        return await self._complete(context, request, headers)

    def _prepare(
        self, body: SamplingRequest, shape: Shape, rid: str, routed: Routed, who: Principal
    ) -> list[GenerationRequest]:
        cap = who.limits.max_tokens
        default = (
            self.s.cfg.default_max_tokens
            if cap is None
            else min(cap, self.s.cfg.default_max_tokens)
        )
        params = params_of(body, default)
        context = self.s.backend.context_length
        if params.max_tokens >= context:
            raise APIError(
                400,
                f"max_tokens {params.max_tokens} is not below this model's context of "
                f"{context} tokens; ask for fewer",
                "invalid_max_tokens",
                "max_tokens",
            )
        request = shape.request(body, rid, routed.target.adapter, params)
        where = "prompt" if request.prompt is not None else "messages"
        try:
            first = self.s.backend.prepare(request)
        except PromptTooLongError as exc:
            raise APIError(400, str(exc), "context_length_exceeded", where) from None
        except InvalidRequestError as exc:
            raise APIError(400, str(exc), "invalid_request", exc.param) from None
        check_request(who.limits, who.tenant, len(first.prompt_ids), params.max_tokens)
        return [first] + [_nth(first, i) for i in range(1, body.n)]

    def _admit(self, who: Principal, gens: list[GenerationRequest]) -> Ticket:
        """The key's limits: its requests at once and its tokens per minute (a 429 if over)."""
        first = gens[0]
        reserve = len(first.prompt_ids) + first.params.max_tokens * len(gens)
        try:
            return self.s.limiter.admit(who.tenant, who.limits, reserve)
        except APIError as exc:
            if exc.status == 429:
                self.s.metrics.rejected.labels(code=exc.code or "key_limit").inc()
            raise

    def _submit(self, gens: list[GenerationRequest], routed: Routed) -> list[EventStream]:
        self.s.router.acquire(routed.target)
        streams: list[EventStream] = []
        try:
            for gen in gens:
                streams.append(self.s.backend.submit(gen))
        except QueueFullError as exc:
            for stream in streams:
                stream.cancel()
            self.s.router.release(routed.target)
            self.s.metrics.rejected.labels(code="queue_full").inc()
            raise APIError(
                429,
                f"the server is busy ({self.s.backend.stats().waiting} requests "
                f"waiting); retry after {exc.retry_after:.0f} s",
                "queue_full",
                headers={"Retry-After": f"{exc.retry_after:.0f}"},
            ) from None
        return streams

    async def _complete(self, c: _Context, request: Request, headers: dict[str, str]) -> Any:
        outcomes = [_Outcome(c.started) for _ in c.streams]

        async def collect(stream: EventStream, outcome: _Outcome) -> None:
            async for event in stream:
                outcome.apply(event)
                if await request.is_disconnected():
                    stream.cancel()

        try:
            await asyncio.gather(*(collect(s, o) for s, o in zip(c.streams, outcomes, strict=True)))
        finally:
            self._record(c, outcomes)
        failed = next((o.error for o in outcomes if o.error is not None), None)
        if failed is not None:
            raise APIError(500, failed, "generation_failed")
        t = c.routed.target
        k = c.gens[0].params.logprobs
        body = c.shape.body(c.rid, t.model_id, t.fingerprint, list(outcomes), k, _usage(outcomes))
        return JSONResponse(body, headers=headers)

    async def _sse(self, c: _Context) -> AsyncIterator[str]:
        outcomes = [_Outcome(c.started) for _ in c.streams]
        model, fp = c.routed.target.model_id, c.routed.target.fingerprint
        include_usage = bool(c.body.stream_options and c.body.stream_options.include_usage)
        k = c.gens[0].params.logprobs
        shape, rid = c.shape, c.rid
        try:
            for i in range(len(outcomes)):
                if (opening := shape.opening(rid, model, fp, i)) is not None:
                    yield _data(opening)
            async for i, event in _merged(c.streams):
                outcomes[i].apply(event)
                if isinstance(event, Delta) and (event.text or event.logprobs):
                    yield _data(shape.delta(rid, model, fp, i, event, k))
                elif isinstance(event, Finished):
                    for chunk in shape.finished(rid, model, fp, i, event):
                        yield _data(chunk)
                elif isinstance(event, Failed):
                    break
            failed = next((o.error for o in outcomes if o.error is not None), None)
            if failed is not None:
                yield _data({"error": APIError(500, failed, "generation_failed").body()["error"]})
            elif include_usage:
                yield _data(shape.usage_chunk(rid, model, fp, _usage(outcomes)))
            yield "data: [DONE]\n\n"
        finally:  # also when the client disconnects: Starlette cancels this generator
            for stream, outcome in zip(c.streams, outcomes, strict=True):
                if not outcome.ended:
                    stream.cancel()
            self._record(c, outcomes)

    def _record(self, c: _Context, outcomes: list[_Outcome]) -> None:
        """One log row and one count per request, and the adapter and the key's tokens
        released."""
        self.s.router.release(c.routed.target)
        spent = sum(x.finish.completion_tokens for x in outcomes if x.finish)
        self.s.limiter.done(c.ticket, len(c.gens[0].prompt_ids) + spent)
        latency = time.perf_counter() - c.started
        arm, version = c.routed.arm, c.routed.target.model_id
        o = outcomes[0]
        error = next((x.error for x in outcomes if x.error is not None), None)
        cancelled = any(
            (x.finish is not None and x.finish.reason == "cancelled") or not x.ended
            for x in outcomes
        )
        status = "error" if error is not None else "cancelled" if cancelled else "ok"
        m = self.s.metrics
        m.requests.labels(arm, version, status).inc()
        if status == "error":
            m.errors.labels(arm, version, "generation_failed").inc()
            log.error(
                "request %s (tenant %s, %s) failed: %s", c.rid, c.tenant, version, error,
                extra={"request_id": c.rid, "tenant": c.tenant, "version": version},
            )  # fmt: skip
        if status == "ok" and o.finish is not None:
            m.latency.labels(arm, version).observe(latency)
            if o.ttft is not None:
                m.ttft.labels(arm, version).observe(o.ttft)
            m.tokens.labels(arm, version, "prompt").inc(o.finish.prompt_tokens)
            completion = sum(x.finish.completion_tokens for x in outcomes if x.finish)
            m.tokens.labels(arm, version, "completion").inc(completion)
        f = o.finish
        messages, answer = c.shape.logged(c.gens[0], o.text, f)
        row = ResponseRow(
            response_id=c.rid,
            tenant=c.tenant,
            messages=messages,
            arm=arm,
            model_version=c.routed.target.version,
            status=status,
            answer=answer if status == "ok" else None,
            error=error,
            finish_reason=f.reason if f else None,
            user_id=c.user,
            conversation_id=c.conversation,
            adapter_sha256=c.routed.target.sha256,
            canary_id=c.routed.canary_id,
            latency_s=latency,
            ttft_s=o.ttft,
            prompt_tokens=len(c.gens[0].prompt_ids) or None,
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
    gens: list[GenerationRequest]
    streams: list[EventStream]
    body: SamplingRequest
    started: float
    shape: Shape
    ticket: Ticket


def _nth(first: GenerationRequest, i: int) -> GenerationRequest:
    """Choice ``i`` of a request for several: its own row, seeded ``seed + i`` when seeded."""
    p = first.params
    seed = None if p.seed is None else p.seed + i
    return replace(first, request_id=f"{first.request_id}/{i}", params=replace(p, seed=seed))


def _usage(outcomes: list[_Outcome]) -> dict[str, int]:
    prompt = next((o.finish.prompt_tokens for o in outcomes if o.finish), 0)
    completion = sum(o.finish.completion_tokens for o in outcomes if o.finish)
    return usage_of(prompt, completion)


async def _merged(streams: list[EventStream]) -> AsyncIterator[tuple[int, Event]]:
    """The events of several streams as they come, each with its stream's index."""
    if len(streams) == 1:
        async for event in streams[0]:
            yield 0, event
        return
    queue: asyncio.Queue[tuple[int, Event] | None] = asyncio.Queue()

    async def pump(i: int, stream: EventStream) -> None:
        try:
            async for event in stream:
                await queue.put((i, event))
        finally:
            await queue.put(None)

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        running = len(tasks)
        while running:
            item = await queue.get()
            if item is None:
                running -= 1
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()


def _data(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"
