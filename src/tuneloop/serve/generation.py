"""What a backend is asked for and what it sends back, whatever engine runs the model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from tuneloop.serve.tools import ToolCall

FinishReason = Literal["stop", "length", "cancelled", "tool_calls"]


@dataclass(frozen=True, slots=True)
class SamplingParams:
    max_tokens: int = 64
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias), sorted
    logprobs: int | None = None  # None: no logprobs; k: the chosen token's and k alternatives
    grammar: str | None = None  # what the answer must follow (compiled by the backend)


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token's log-probability under the model, as OpenAI's ``logprobs`` has it."""

    token: str
    logprob: float
    bytes: tuple[int, ...]
    top: tuple[TokenLogprob, ...] = ()

    def to_dict(self, alternatives: bool = True) -> dict[str, object]:
        out: dict[str, object] = {
            "token": self.token,
            "logprob": self.logprob,
            "bytes": list(self.bytes),
        }
        if alternatives:
            out["top_logprobs"] = [t.to_dict(False) for t in self.top]
        return out


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    request_id: str
    messages: tuple[dict[str, Any], ...]  # OpenAI's shape: content, tool_calls, tool_call_id
    adapter: str | None  # a loaded adapter's name; None: the base model
    params: SamplingParams
    prompt_ids: tuple[int, ...] = ()  # filled in by the backend's check, when it tokenizes
    tools: tuple[dict[str, Any], ...] = ()  # the tools the model may call (OpenAI's shape)
    tool_mode: str | None = None  # auto | required | function:NAME; None: no tool calls
    parallel_tool_calls: bool = True
    json_schema: dict[str, Any] | None = None  # the schema the answer must follow
    prompt: str | None = None  # a raw prompt (/v1/completions): no chat template


@dataclass(slots=True)
class Delta:
    """Text that became final since the last delta (may be empty at the first token), and the
    log-probabilities of the tokens generated since the last delta, when they were asked for."""

    text: str
    first: bool = False
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(slots=True)
class Finished:
    reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(slots=True)
class Failed:
    message: str


Event = Delta | Finished | Failed


@dataclass(slots=True)
class BackendStats:
    running: int = 0
    waiting: int = 0
    capacity: int = 0


class QueueFullError(Exception):
    """The backend's queue is full; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"server busy, retry after {retry_after:.0f} s")
        self.retry_after = retry_after


class InvalidRequestError(Exception):
    """A parameter the model cannot take (a token id past its vocabulary …): a 400 for ``param``."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


class PromptTooLongError(Exception):
    """The prompt plus max_tokens does not fit the model's context."""

    def __init__(self, prompt_tokens: int, max_tokens: int, context: int) -> None:
        super().__init__(
            f"this model's context is {context} tokens, but the messages take {prompt_tokens} "
            f"and max_tokens asks for {max_tokens} more; shorten the messages or lower max_tokens"
        )


class EventStream(Protocol):
    """A queued request's events; they end with one Finished or Failed."""

    def __aiter__(self) -> AsyncIterator[Event]: ...

    def cancel(self) -> None:
        """The client went away: free the request's place (a Finished("cancelled") follows)."""
        ...


class Backend(Protocol):
    """An engine that runs one base model with LoRA adapters loaded at run time."""

    base_name: str
    context_length: int

    def prepare(self, request: GenerationRequest) -> GenerationRequest:
        """Tokenize and check the request; raise PromptTooLongError or InvalidRequestError
        before anything is queued."""
        ...

    def submit(self, request: GenerationRequest) -> EventStream:
        """Queue the request now (QueueFullError if full); iterate the stream for its events."""
        ...

    async def load_adapter(self, name: str, path: Path) -> None: ...

    async def unload_adapter(self, name: str) -> None: ...

    def stats(self) -> BackendStats: ...

    async def close(self) -> None: ...
