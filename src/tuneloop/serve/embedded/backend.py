"""The embedded backend: the base model and its adapters in this process (the default)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from tuneloop.model.base import BaseModelInfo
from tuneloop.serve.embedded.scheduler import Job, Scheduler
from tuneloop.serve.generation import (
    BackendStats,
    Event,
    Failed,
    Finished,
    GenerationRequest,
    PromptTooLongError,
)


class EmbeddedBackend:
    """One base model, LoRA adapters loaded by name, requests batched by a worker thread."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        base_name: str,
        max_batch: int = 8,
        max_waiting: int = 64,
    ) -> None:
        model.eval()
        self.model = model
        self.tokenizer = tokenizer
        self.base_name = base_name
        self.context_length = int(getattr(model.config, "max_position_embeddings", 2048))
        self.scheduler = Scheduler(model, tokenizer, max_batch, max_waiting)
        self.base_info: BaseModelInfo | None = None

    @classmethod
    def load(
        cls, base_ref: str, base_name: str, dtype: str = "float32", **kwargs: Any
    ) -> EmbeddedBackend:
        import torch

        from tuneloop.model.base import load_base

        model, tokenizer, info = load_base(base_ref)
        if dtype != "float32":
            model = model.to(getattr(torch, dtype))
        backend = cls(model, tokenizer, base_name, **kwargs)
        backend.base_info = info
        return backend

    def prepare(self, request: GenerationRequest) -> GenerationRequest:
        ids = self.tokenizer.apply_chat_template(
            list(request.messages), tokenize=True, add_generation_prompt=True, return_dict=False
        )
        if len(ids) + request.params.max_tokens > self.context_length:
            raise PromptTooLongError(len(ids), request.params.max_tokens, self.context_length)
        return replace(request, prompt_ids=tuple(int(i) for i in ids))

    def submit(self, request: GenerationRequest) -> JobStream:
        if not request.prompt_ids:
            request = self.prepare(request)
        stream = JobStream(request)
        self.scheduler.submit(stream.job)  # QueueFullError here, before any response starts
        return stream

    async def load_adapter(self, name: str, path: Path) -> None:
        await asyncio.wrap_future(self.scheduler.call(lambda: self._load(name, path)))

    def _load(self, name: str, path: Path) -> None:
        """On the worker thread. The first adapter wraps the base model in a PeftModel."""
        from peft import PeftModel

        if hasattr(self.model, "peft_config"):
            if name not in self.model.peft_config:
                self.model.load_adapter(str(path), adapter_name=name, is_trainable=False)
        else:
            self.model = PeftModel.from_pretrained(
                self.model, str(path), adapter_name=name, is_trainable=False
            )
        self.model.eval()
        self.scheduler.model = self.model

    async def unload_adapter(self, name: str) -> None:
        await asyncio.wrap_future(self.scheduler.call(lambda: self._unload(name)))

    def _unload(self, name: str) -> None:
        config = getattr(self.model, "peft_config", {})
        if name not in config:
            return
        if len(config) == 1:  # peft cannot delete its last adapter: go back to the bare model
            self.model = self.model.unload()
        else:
            if self.model.active_adapter == name:  # deleting the active one only warns
                self.model.set_adapter(next(n for n in config if n != name), inference_mode=True)
            self.model.delete_adapter(name)
        self.model.eval()
        self.scheduler.model = self.model

    def adapters(self) -> list[str]:
        return sorted(getattr(self.model, "peft_config", {}))

    def stats(self) -> BackendStats:
        return self.scheduler.stats()

    async def close(self) -> None:
        await asyncio.to_thread(self.scheduler.close)


class JobStream:
    """The events the worker thread sends for one job, relayed onto the event loop."""

    def __init__(self, request: GenerationRequest) -> None:
        loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

        def relay(event: Event) -> None:
            loop.call_soon_threadsafe(self._queue.put_nowait, event)

        self.job = Job(request, relay)
        self._done = False

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        if self._done:
            raise StopAsyncIteration
        event = await self._queue.get()
        if isinstance(event, Finished | Failed):
            self._done = True
        return event

    def cancel(self) -> None:
        self.job.cancelled = True
