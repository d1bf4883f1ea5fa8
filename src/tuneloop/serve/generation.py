"""What a backend is asked for and what it sends back, whatever engine runs the model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True, slots=True)
class SamplingParams:
    max_tokens: int = 64
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    request_id: str
    messages: tuple[dict[str, str], ...]
    adapter: str | None  # a loaded adapter's name; None: the base model
    params: SamplingParams
    prompt_ids: tuple[int, ...] = ()  # filled in by the backend's check, when it tokenizes


@dataclass(slots=True)
class Delta:
    """Text that became final since the last delta (may be empty at the first token)."""

    text: str
    first: bool = False


@dataclass(slots=True)
class Finished:
    reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    text: str = ""


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
        """Tokenize and check the request; raise PromptTooLongError before anything is queued."""
        ...

    def submit(self, request: GenerationRequest) -> EventStream:
        """Queue the request now (QueueFullError if full); iterate the stream for its events."""
        ...

    async def load_adapter(self, name: str, path: Path) -> None: ...

    async def unload_adapter(self, name: str) -> None: ...

    def stats(self) -> BackendStats: ...

    async def close(self) -> None: ...
