"""The embedded backend: the base model and its adapters in this process (the default)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from tuneloop.model.base import BaseModelInfo, load_base
from tuneloop.serve.embedded.scheduler import Job, Scheduler
from tuneloop.serve.generation import (
    BackendStats,
    Event,
    Failed,
    Finished,
    GenerationRequest,
    InvalidRequestError,
    PromptTooLongError,
)
from tuneloop.serve.tools import hermes_messages, template_messages


class EmbeddedBackend:
    """One base model, LoRA adapters loaded by name, requests batched by a worker thread."""

    def __init__(
        self,
        load: Callable[[], tuple[Any, Any]],
        base_name: str,
        max_batch: int = 8,
        max_waiting: int = 64,
        prefill_share: float = 0.5,
        prefill_chunk: int | None = None,
        lane_tokens: int = 1024,
    ) -> None:
        """``load`` returns (model, tokenizer); it runs on the generation thread."""
        self.scheduler = Scheduler(
            load, max_batch, max_waiting, prefill_share=prefill_share,
            prefill_chunk=prefill_chunk, lane_tokens=lane_tokens,
        )  # fmt: skip
        self.tokenizer = self.scheduler.tokenizer
        self.base_name = base_name
        config = self.scheduler.model.config
        self.context_length = int(getattr(config, "max_position_embeddings", 2048))
        self.base_info: BaseModelInfo | None = None

    @property
    def model(self) -> Any:
        return self.scheduler.model

    @classmethod
    def load(
        cls, base_ref: str, base_name: str, dtype: str = "float32", **kwargs: Any
    ) -> EmbeddedBackend:
        info: list[BaseModelInfo] = []

        def load() -> tuple[Any, Any]:
            model, tokenizer, base = load_base(base_ref)
            info.append(base)
            return (model.to(getattr(torch, dtype)) if dtype != "float32" else model), tokenizer

        backend = cls(load, base_name, **kwargs)
        backend.base_info = info[0]
        return backend

    def prepare(self, request: GenerationRequest) -> GenerationRequest:
        vocab = self.scheduler.vocab
        for token, _ in request.params.logit_bias:
            if token >= vocab:
                raise InvalidRequestError(
                    f"logit_bias: token id {token} is not in this model's vocabulary "
                    f"(0..{vocab - 1})",
                    "logit_bias",
                )
        ids = self._prompt_ids(request)
        if not ids:
            raise InvalidRequestError("prompt: it holds no tokens; send some text", "prompt")
        if len(ids) + request.params.max_tokens > self.context_length:
            raise PromptTooLongError(len(ids), request.params.max_tokens, self.context_length)
        grammar = self.scheduler.grammars.compile(request)
        params = replace(request.params, grammar=grammar) if grammar else request.params
        return replace(request, prompt_ids=tuple(int(i) for i in ids), params=params)

    def _prompt_ids(self, request: GenerationRequest) -> list[int]:
        """The chat template's tokens: tools through the template when it knows them, else
        through the Hermes system prompt (serve/tools.py); a raw prompt as it is."""
        if request.prompt is not None:
            return [int(i) for i in self.tokenizer(request.prompt)["input_ids"]]
        messages: list[dict[str, Any]] = list(request.messages)
        extra: dict[str, Any] = {}
        if request.tools and "tools" in (self.tokenizer.chat_template or ""):
            messages, extra["tools"] = template_messages(messages), list(request.tools)
        else:
            messages = list(hermes_messages(messages, list(request.tools)))
        ids = self.tokenizer.apply_chat_template(
            messages, tokenize=True, add_generation_prompt=True, return_dict=False, **extra
        )
        return [int(i) for i in ids]

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
        from peft import PeftModel  # noqa: PLC0415 - heavy (peft)

        model = self.scheduler.model
        if hasattr(model, "peft_config"):
            if name not in model.peft_config:
                model.load_adapter(str(path), adapter_name=name, is_trainable=False)
        else:
            model = PeftModel.from_pretrained(model, str(path), adapter_name=name,
                                              is_trainable=False)  # fmt: skip
        _cast_adapter(model, name)
        model.eval()
        self.scheduler.model = model

    async def unload_adapter(self, name: str) -> None:
        await asyncio.wrap_future(self.scheduler.call(lambda: self._unload(name)))

    def _unload(self, name: str) -> None:
        model = self.scheduler.model
        config = getattr(model, "peft_config", {})
        if name not in config:
            return
        if len(config) == 1:  # peft cannot delete its last adapter: go back to the bare model
            model = model.unload()
        else:
            if model.active_adapter == name:  # deleting the active one only warns
                model.set_adapter(next(n for n in config if n != name), inference_mode=True)
            model.delete_adapter(name)
        model.eval()
        self.scheduler.model = model

    def adapters(self) -> list[str]:
        return sorted(getattr(self.model, "peft_config", {}))

    def stats(self) -> BackendStats:
        return self.scheduler.stats()

    async def close(self) -> None:
        await asyncio.to_thread(self.scheduler.close)


def _cast_adapter(model: Any, name: str) -> None:
    """Give the adapter's weights the base model's dtype.

    Adapters are saved in fp32; on a bf16 base every LoRA layer would otherwise convert its
    input and output at every step, which costs more than the adapter's own arithmetic.
    """
    dtype = model.get_base_model().dtype
    for module in model.modules():
        for part in ("lora_A", "lora_B"):
            table = getattr(module, part, None)
            if table is not None and name in table:
                table[name].to(dtype)


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
