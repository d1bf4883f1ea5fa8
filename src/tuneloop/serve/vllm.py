"""The production backend: an OpenAI-compatible engine with LoRA adapters loaded at run time.

vLLM is the one spoken here: started with ``--enable-lora`` (and ``--max-lora-rank`` at least the
adapters' rank) and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``, it takes adapters through
``POST /v1/load_lora_adapter`` and serves each under the name it was loaded with. tuneloop's
router, canary, auth and serving log stay in front of it unchanged: only generation moves.
Every version is loaded under a fresh name (``v<version>-<sha256 prefix>``): vLLM keeps serving
the old weights when a name is reloaded (vllm#42125). The adapter folder must be readable by the
vLLM process at the same path (the same machine, or a shared volume).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from tuneloop.errors import TuneloopError
from tuneloop.serve.generation import (
    BackendStats,
    Delta,
    Event,
    Failed,
    Finished,
    FinishReason,
    GenerationRequest,
    PromptTooLongError,
    QueueFullError,
    TokenLogprob,
)
from tuneloop.serve.tools import ToolCall, hermes_messages


class VLLMBackend:
    def __init__(
        self,
        url: str,
        base_name: str,
        tokenizer: Any | None = None,
        context_length: int = 2048,
        max_inflight: int = 128,
        api_key: str | None = None,
        upstream_model: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.base_name = base_name
        self.upstream_model = upstream_model or base_name
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.max_inflight = max_inflight
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=httpx.Timeout(600, connect=10)
        )
        self._inflight = 0

    @classmethod
    async def connect(
        cls, url: str, base_name: str, tokenizer: Any | None = None, **kwargs: Any
    ) -> VLLMBackend:
        """Ask the server what it serves: the base model's id and its context length."""
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                listing = (await client.get(f"{url.rstrip('/')}/v1/models")).json()
        except (httpx.HTTPError, ValueError) as exc:
            raise TuneloopError(
                f"no vLLM server at {url} ({exc}); start it first (docs/scale.md, "
                "The vLLM backend) or fix serve.vllm_url"
            ) from None
        bases = [m for m in listing.get("data", []) if not m.get("parent")]
        if not bases:
            raise TuneloopError(f"{url}/v1/models lists no base model")
        base = bases[0]
        return cls(
            url,
            base_name,
            tokenizer,
            int(base.get("max_model_len") or 2048),
            upstream_model=str(base["id"]),
            **kwargs,
        )

    def prepare(self, request: GenerationRequest) -> GenerationRequest:
        if self.tokenizer is None:
            return request  # the engine checks the length itself
        if request.prompt is not None:
            ids = self.tokenizer(request.prompt)["input_ids"]
        else:
            messages = hermes_messages(list(request.messages), list(request.tools))
            ids = self.tokenizer.apply_chat_template(
                messages, tokenize=True, add_generation_prompt=True, return_dict=False
            )
        if len(ids) + request.params.max_tokens > self.context_length:
            raise PromptTooLongError(len(ids), request.params.max_tokens, self.context_length)
        return replace(request, prompt_ids=tuple(int(i) for i in ids))

    def submit(self, request: GenerationRequest) -> UpstreamStream:
        if self._inflight >= self.max_inflight:
            raise QueueFullError(1.0)
        return UpstreamStream(self, request)

    def _payload(self, request: GenerationRequest) -> dict[str, Any]:
        p = request.params
        body: dict[str, Any] = {
            "model": request.adapter or self.upstream_model,
            **_what(request),
            "max_tokens": p.max_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if p.seed is not None:
            body["seed"] = p.seed
        if p.stop:
            body["stop"] = list(p.stop)
        if p.presence_penalty:
            body["presence_penalty"] = p.presence_penalty
        if p.frequency_penalty:
            body["frequency_penalty"] = p.frequency_penalty
        if p.logit_bias:
            body["logit_bias"] = {str(t): b for t, b in p.logit_bias}
        if p.logprobs is not None and request.prompt is not None:
            body["logprobs"] = p.logprobs
        elif p.logprobs is not None:
            body["logprobs"], body["top_logprobs"] = True, p.logprobs
        return body

    async def load_adapter(self, name: str, path: Path) -> None:
        body = {"lora_name": name, "lora_path": str(path.resolve())}
        response = await self._client.post("/v1/load_lora_adapter", json=body)
        if response.status_code >= 400 and "already" not in response.text.lower():
            raise TuneloopError(f"vLLM refused to load {name}: {response.text[:300]}")

    async def unload_adapter(self, name: str) -> None:
        await self._client.post("/v1/unload_lora_adapter", json={"lora_name": name})

    def stats(self) -> BackendStats:
        return BackendStats(running=self._inflight, waiting=0, capacity=self.max_inflight)

    async def close(self) -> None:
        await self._client.aclose()


class UpstreamStream:
    """One streaming request to the engine, relayed as events; cancel() closes the connection."""

    def __init__(self, backend: VLLMBackend, request: GenerationRequest) -> None:
        self._backend, self._request = backend, request
        self._events = self._run()
        self._closing: asyncio.Future[None] | None = None
        backend._inflight += 1
        self._released = False

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events

    def cancel(self) -> None:
        self._release()
        self._closing = asyncio.ensure_future(self._events.aclose())

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._backend._inflight -= 1

    async def _run(self) -> AsyncGenerator[Event, None]:
        b, req = self._backend, self._request
        text: list[str] = []
        usage: dict[str, Any] = {}
        calls: dict[int, dict[str, str]] = {}
        finish, first = "stop", True
        route = "/v1/completions" if req.prompt is not None else "/v1/chat/completions"
        try:
            async with b._client.stream("POST", route, json=b._payload(req)) as response:
                if response.status_code >= 400:
                    detail = (await response.aread()).decode("utf-8", "replace")[:300]
                    yield Failed(f"the engine answered {response.status_code}: {detail}")
                    return
                async for line in response.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    if "error" in chunk:
                        yield Failed(f"the engine failed: {chunk['error']}")
                        return
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices", []):
                        delta = choice.get("delta") or {}
                        piece = delta.get("content") or choice.get("text") or ""
                        _gather(calls, delta.get("tool_calls") or [])
                        logprobs = _logprobs(choice.get("logprobs"))
                        if piece or first or logprobs:
                            text.append(piece)
                            yield Delta(piece, first=first, logprobs=logprobs)
                            first = False
                        finish = choice.get("finish_reason") or finish
        except httpx.HTTPError as exc:
            yield Failed(f"lost the engine mid-answer: {exc}")
            return
        finally:
            self._release()
        prompt = int(usage.get("prompt_tokens", len(req.prompt_ids)))
        completion = int(usage.get("completion_tokens", 0))
        found = tuple(ToolCall(c.get("id") or f"call_{i}", c["name"], c["arguments"] or "{}")
                      for i, c in sorted(calls.items()))  # fmt: skip
        reason: FinishReason = "tool_calls" if found else "length" if finish == "length" else "stop"
        yield Finished(reason, prompt, completion, "".join(text), found)


def _what(request: GenerationRequest) -> dict[str, Any]:
    """The prompt, or the conversation with its tools and the answer's schema, as vLLM's
    OpenAI server takes them (its tool parser reads the calls: see docs/scale.md)."""
    if request.prompt is not None:
        return {"prompt": request.prompt}
    out: dict[str, Any] = {"messages": list(request.messages)}
    if request.tools:
        mode = request.tool_mode or "auto"
        out["tools"] = list(request.tools)
        out["tool_choice"] = (
            {"type": "function", "function": {"name": mode.split(":", 1)[1]}}
            if mode.startswith("function:")
            else mode
        )
        out["parallel_tool_calls"] = request.parallel_tool_calls
    if request.json_schema is not None:
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": request.json_schema},
        }
    return out


def _gather(calls: dict[int, dict[str, str]], fragments: list[dict[str, Any]]) -> None:
    """Streamed tool-call pieces, joined by their index."""
    for piece in fragments:
        call = calls.setdefault(int(piece.get("index", 0)), {"id": "", "name": "", "arguments": ""})
        call["id"] = piece.get("id") or call["id"]
        function = piece.get("function") or {}
        call["name"] += function.get("name") or ""
        call["arguments"] += function.get("arguments") or ""


def _logprob(entry: dict[str, Any], top: bool = True) -> TokenLogprob:
    alternatives = tuple(_logprob(t, False) for t in entry.get("top_logprobs") or ()) if top else ()
    raw = entry.get("bytes")
    text = str(entry.get("token", ""))
    return TokenLogprob(
        text,
        float(entry.get("logprob", 0.0)),
        tuple(raw) if raw is not None else tuple(text.encode("utf-8")),
        alternatives,
    )


def _logprobs(found: dict[str, Any] | None) -> tuple[TokenLogprob, ...]:
    """The engine's log-probabilities of one chunk (chat's ``content``, or the legacy
    parallel lists of a text completion), as events carry them."""
    found = found or {}
    if "tokens" in found:
        tops = found.get("top_logprobs") or [{} for _ in found["tokens"]]
        return tuple(
            TokenLogprob(t, float(lp or 0.0), tuple(t.encode("utf-8")),
                         tuple(TokenLogprob(a, float(v), tuple(a.encode("utf-8")))
                               for a, v in (top or {}).items()))
            for t, lp, top in zip(found["tokens"], found["token_logprobs"], tops, strict=False)
        )  # fmt: skip
    return tuple(_logprob(e) for e in found.get("content") or ())
