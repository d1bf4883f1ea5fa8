"""How a request becomes generation requests, and how outcomes become response bodies.

Two shapes share one handler (``serve/chat.py``): chat completions, and the legacy text
completions of ``/v1/completions``. Each builds the backend's request from its body and writes
its own response and stream chunks; routing, queueing, logging and counting are the handler's.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from tuneloop.serve.generation import Delta, Finished, GenerationRequest, SamplingParams
from tuneloop.serve.generation import TokenLogprob as Logprob
from tuneloop.serve.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    SamplingRequest,
    chunk_body,
    completion_body,
)
from tuneloop.serve.tools import ToolCall, call_text, hermes_messages


class Ended(Protocol):
    """One choice's outcome as a shape reads it."""

    text: str
    finish: Finished | None
    logprobs: list[Logprob]


class Shape(Protocol):
    id_prefix: str

    def request(
        self, body: Any, rid: str, adapter: str | None, params: SamplingParams
    ) -> GenerationRequest: ...

    def logged(self, gen: GenerationRequest, text: str, finish: Finished | None) -> tuple[
        list[dict[str, str]], str]: ...  # fmt: skip

    def body(self, rid: str, model: str, fp: str, ended: list[Ended], k: int | None,
             usage: dict[str, int]) -> dict[str, Any]: ...  # fmt: skip

    def opening(self, rid: str, model: str, fp: str, index: int) -> dict[str, Any] | None: ...

    def delta(self, rid: str, model: str, fp: str, index: int, event: Delta,
              k: int | None) -> dict[str, Any]: ...  # fmt: skip

    def finished(self, rid: str, model: str, fp: str, index: int,
                 event: Finished) -> list[dict[str, Any]]: ...  # fmt: skip

    def usage_chunk(
        self, rid: str, model: str, fp: str, usage: dict[str, int]
    ) -> dict[str, Any]: ...


def params_of(body: SamplingRequest, default_max_tokens: int) -> SamplingParams:
    return SamplingParams(
        max_tokens=body.limit(default_max_tokens),
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
        stop=body.stop_list(),
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        logit_bias=body.bias(),
        logprobs=body.logprob_count(),
    )


def _chat_logprobs(items: list[Logprob], k: int | None) -> dict[str, Any] | None:
    return None if k is None else {"content": [t.to_dict() for t in items], "refusal": None}


def _message(text: str, calls: tuple[ToolCall, ...]) -> dict[str, Any]:
    if not calls:
        return {"role": "assistant", "content": text}
    listed = [t.to_dict() for t in calls]
    return {"role": "assistant", "content": text or None, "tool_calls": listed}


class ChatShape:
    id_prefix = "chatcmpl"

    def request(
        self, body: ChatCompletionRequest, rid: str, adapter: str | None, params: SamplingParams
    ) -> GenerationRequest:
        schema = body.response_format.schema_of() if body.response_format else None
        return GenerationRequest(
            rid, tuple(m.as_dict() for m in body.messages), adapter, params,
            tools=tuple(body.active_tools()), tool_mode=body.tool_mode(),
            parallel_tool_calls=body.parallel_tool_calls, json_schema=schema,
        )  # fmt: skip

    def logged(
        self, gen: GenerationRequest, text: str, finish: Finished | None
    ) -> tuple[list[dict[str, str]], str]:
        """The conversation and the answer as the model reads and writes them (tool calls as
        Hermes text), for training on later."""
        answer = text
        if finish is not None and finish.tool_calls:
            calls = [call_text(t.name, t.arguments) for t in finish.tool_calls]
            answer = "\n".join(([text] if text else []) + calls)
        return hermes_messages(list(gen.messages), []), answer

    def body(self, rid: str, model: str, fp: str, ended: list[Ended], k: int | None,
             usage: dict[str, int]) -> dict[str, Any]:  # fmt: skip
        choices = []
        for i, o in enumerate(ended):
            assert o.finish is not None
            choices.append({
                "index": i, "message": _message(o.text, o.finish.tool_calls),
                "logprobs": _chat_logprobs(o.logprobs, k), "finish_reason": o.finish.reason,
            })  # fmt: skip
        return completion_body(rid, model, choices, usage, fp)

    def opening(self, rid: str, model: str, fp: str, index: int) -> dict[str, Any] | None:
        return chunk_body(rid, model, fp, {"role": "assistant", "content": ""}, index=index)

    def delta(self, rid: str, model: str, fp: str, index: int, event: Delta,
              k: int | None) -> dict[str, Any]:  # fmt: skip
        lp = _chat_logprobs(list(event.logprobs), k)
        return chunk_body(rid, model, fp, {"content": event.text}, index=index, logprobs=lp)

    def finished(self, rid: str, model: str, fp: str, index: int,
                 event: Finished) -> list[dict[str, Any]]:  # fmt: skip
        out = []
        if event.tool_calls:
            calls = [t.to_dict(index=n) for n, t in enumerate(event.tool_calls)]
            out.append(chunk_body(rid, model, fp, {"tool_calls": calls}, index=index))
        out.append(chunk_body(rid, model, fp, {}, event.reason, index=index))
        return out

    def usage_chunk(self, rid: str, model: str, fp: str, usage: dict[str, int]) -> dict[str, Any]:
        return chunk_body(rid, model, fp, None, usage=usage)


def _text_logprobs(items: list[Logprob], k: int | None) -> dict[str, Any] | None:
    """The legacy shape: parallel lists of tokens, their log-probabilities and top rivals."""
    if k is None:
        return None
    offsets, at = [], 0
    for t in items:
        offsets.append(at)
        at += len(t.token)
    return {
        "tokens": [t.token for t in items],
        "token_logprobs": [t.logprob for t in items],
        "top_logprobs": [{a.token: a.logprob for a in t.top} for t in items],
        "text_offset": offsets,
    }


def _text_choice(index: int, text: str, finish: str | None, logprobs: Any) -> dict[str, Any]:
    return {"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish}


def _text_body(rid: str, model: str, fp: str, choices: list[dict[str, Any]],
               usage: dict[str, int] | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
        "system_fingerprint": fp, "choices": choices, "usage": usage,
    }  # fmt: skip


class TextShape:
    id_prefix = "cmpl"

    def request(
        self, body: CompletionRequest, rid: str, adapter: str | None, params: SamplingParams
    ) -> GenerationRequest:
        return GenerationRequest(rid, (), adapter, params, prompt=body.prompt_text())

    def logged(
        self, gen: GenerationRequest, text: str, finish: Finished | None
    ) -> tuple[list[dict[str, str]], str]:
        """A raw prompt is logged as one user message: the serving log holds conversations."""
        return [{"role": "user", "content": gen.prompt or ""}], text

    def body(self, rid: str, model: str, fp: str, ended: list[Ended], k: int | None,
             usage: dict[str, int]) -> dict[str, Any]:  # fmt: skip
        choices = [
            _text_choice(i, o.text, o.finish.reason if o.finish else None,
                         _text_logprobs(o.logprobs, k))
            for i, o in enumerate(ended)
        ]  # fmt: skip
        return _text_body(rid, model, fp, choices, usage)

    def opening(self, rid: str, model: str, fp: str, index: int) -> dict[str, Any] | None:
        return None

    def delta(self, rid: str, model: str, fp: str, index: int, event: Delta,
              k: int | None) -> dict[str, Any]:  # fmt: skip
        choice = _text_choice(index, event.text, None, _text_logprobs(list(event.logprobs), k))
        return _text_body(rid, model, fp, [choice])

    def finished(self, rid: str, model: str, fp: str, index: int,
                 event: Finished) -> list[dict[str, Any]]:  # fmt: skip
        return [_text_body(rid, model, fp, [_text_choice(index, "", event.reason, None)])]

    def usage_chunk(self, rid: str, model: str, fp: str, usage: dict[str, int]) -> dict[str, Any]:
        return _text_body(rid, model, fp, [], usage)
