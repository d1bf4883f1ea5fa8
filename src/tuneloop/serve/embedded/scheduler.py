"""The worker thread that owns the model: it admits requests, runs decode steps, loads adapters.

One thread does all model work, so peft's adapter bookkeeping is never changed under a running
forward pass: adapter loads and unloads are queued as commands and run between two steps.
Each loop: run pending commands; admit waiting requests (one prefill for all of them, up to a
token budget so a long prompt cannot stall the others for long); run one decode step for every
running row; retire rows that finished, hit their limit, or whose client went away.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch

from tuneloop.serve.embedded.detok import IncrementalText
from tuneloop.serve.embedded.kv import KVBatch, left_padded, positions_of
from tuneloop.serve.embedded.sampling import generator_for, next_tokens
from tuneloop.serve.generation import (
    BackendStats,
    Delta,
    Event,
    Failed,
    Finished,
    FinishReason,
    GenerationRequest,
    QueueFullError,
)

BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in adapter_names


@dataclass(eq=False)
class Job:
    request: GenerationRequest
    sink: Callable[[Event], None]  # must be safe to call from the worker thread
    cancelled: bool = False  # set by the request's side when its client goes away
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass(eq=False)
class _Row:
    job: Job
    text: IncrementalText
    generator: torch.Generator | None
    last: int = 0
    produced: int = 0
    finish: FinishReason | None = None


def _cache_keyword(model: Any) -> str:
    """transformers 5.x renamed ``past_key_values`` to ``cache``; use whichever forward takes."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(base, "model", base)
    params = inspect.signature(inner.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    found = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(found if isinstance(found, list) else [found] if found is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(int(i) for i in ids)


class Scheduler:
    """Owns the model on its own thread, from loading it to the last request.

    The model is loaded on the thread that runs it: PyTorch's bf16 kernels run about 1.6×
    slower (a single core's speed) when weights created on one thread are used from another,
    measured here on SmolLM2 with 2 cores (50 → 83 ms per decode step of 8 rows).
    """

    def __init__(
        self,
        load: Callable[[], tuple[Any, Any]],
        max_batch: int = 8,
        max_waiting: int = 64,
        prefill_tokens: int = 4096,
    ) -> None:
        self.max_batch = max_batch
        self.max_waiting = max_waiting
        self.prefill_tokens = prefill_tokens
        self._cond = threading.Condition()
        self._waiting: deque[Job] = deque()
        self._commands: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._rows: list[_Row] = []
        self._batch: KVBatch | None = None
        self._stopped = False
        self._seconds_per_job = 2.0  # running mean, for Retry-After
        self.steps = 0
        loaded: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(load, loaded), name="tuneloop-generate", daemon=True
        )
        self._thread.start()
        loaded.result()  # the loader's exception, if any, is raised here

    def _setup(self, load: Callable[[], tuple[Any, Any]]) -> None:
        model, tokenizer = load()
        model.eval()
        self.model, self.tokenizer = model, tokenizer
        self._pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._eos = eos_ids(model, tokenizer)
        self._cache_kw = _cache_keyword(model)

    # -- the request side (any thread) -----------------------------------------------------------

    def submit(self, job: Job) -> None:
        with self._cond:
            if len(self._waiting) >= self.max_waiting:
                raise QueueFullError(self.retry_after())
            self._waiting.append(job)
            self._cond.notify()

    def retry_after(self) -> float:
        backlog = len(self._waiting) + len(self._rows)
        return max(1.0, round(backlog * self._seconds_per_job / self.max_batch))

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn`` on the worker thread between two steps; its result arrives in the future."""
        future: Future[Any] = Future()
        with self._cond:
            if self._stopped:
                future.set_exception(RuntimeError("the generation worker has stopped"))
                return future
            self._commands.append((fn, future))
            self._cond.notify()
        return future

    def stats(self) -> BackendStats:
        return BackendStats(
            running=len(self._rows), waiting=len(self._waiting), capacity=self.max_batch
        )

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=30)

    # -- the worker thread -------------------------------------------------------------------------

    def _run(self, load: Callable[[], tuple[Any, Any]], loaded: Future[None]) -> None:
        try:
            self._setup(load)
        except BaseException as exc:
            loaded.set_exception(exc)
            return
        loaded.set_result(None)
        while True:
            with self._cond:
                while not (self._stopped or self._waiting or self._commands or self._rows):
                    self._cond.wait()
                if self._stopped:
                    break
                commands = list(self._commands)
                self._commands.clear()
                admitted = self._take_waiting()
            for fn, future in commands:
                _run_command(fn, future)
            try:
                if admitted:
                    self._admit(admitted)
                if self._rows:
                    self._step()
            except Exception as exc:  # a failed forward pass fails its requests, not the server
                self._fail_all(admitted, f"generation failed: {type(exc).__name__}: {exc}")
        self._fail_all([], "the server is shutting down")
        for job in self._waiting:
            job.sink(Failed("the server is shutting down"))

    def _take_waiting(self) -> list[Job]:
        """Waiting jobs that fit in the batch and the prefill budget (at least one)."""
        taken: list[Job] = []
        budget = self.prefill_tokens
        while self._waiting and len(self._rows) + len(taken) < self.max_batch:
            job = self._waiting[0]
            if job.cancelled:
                self._waiting.popleft()
                job.sink(Finished("cancelled", len(job.request.prompt_ids), 0))
                continue
            cost = len(job.request.prompt_ids)
            if taken and cost > budget:
                break
            budget -= cost
            taken.append(self._waiting.popleft())
        return taken

    def _forward(self, jobs: list[Job], **inputs: Any) -> torch.Tensor:
        if hasattr(self.model, "peft_config"):
            names = [j.request.adapter or BASE_ADAPTER for j in jobs]
            if len(set(names)) == 1 and names[0] != BASE_ADAPTER:
                self._activate(names[0])  # one adapter for every row: the faster path
            else:
                inputs["adapter_names"] = names
        with torch.inference_mode():
            out = self.model(use_cache=True, logits_to_keep=1, **inputs)
        logits: torch.Tensor = out.logits[:, -1, :]
        return logits

    def _activate(self, name: str) -> None:
        """Make ``name`` the active adapter (peft's plain LoRA path, ~30% faster than the mixed
        path of ``adapter_names``); a switch costs one ``set_adapter`` and happens only when the
        batch's adapter changes."""
        if self.model.active_adapter != name:
            self.model.set_adapter(name, inference_mode=True)

    def _admit(self, jobs: list[Job]) -> None:
        from transformers import DynamicCache

        ids, mask = left_padded([list(j.request.prompt_ids) for j in jobs], self._pad)
        cache = DynamicCache(config=self.model.config)
        logits = self._forward(
            jobs,
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions_of(mask),
            **{self._cache_kw: cache},
        )
        joined = KVBatch(cache, mask, mask.sum(dim=1))
        if self._batch is None:
            self._batch = joined
        else:
            self._batch.extend(joined)
        rows = [
            _Row(
                j,
                IncrementalText(self.tokenizer, j.request.params.stop),
                generator_for(j.request.params),
            )
            for j in jobs
        ]
        self._rows.extend(rows)
        self._take(rows, logits)

    def _step(self) -> None:
        batch = self._batch
        assert batch is not None
        step_mask, positions = batch.step_inputs()
        ids = torch.tensor([[row.last] for row in self._rows], dtype=torch.long)
        logits = self._forward(
            [row.job for row in self._rows],
            input_ids=ids,
            attention_mask=step_mask,
            position_ids=positions,
            **{self._cache_kw: batch.cache},
        )
        batch.advance(step_mask)
        self.steps += 1
        self._take(self._rows, logits)

    def _take(self, rows: list[_Row], logits: torch.Tensor) -> None:
        """Give each row its next token, then retire the rows that are done."""
        params = [r.job.request.params for r in rows]
        tokens = next_tokens(logits, params, [r.generator for r in rows])
        for row, token in zip(rows, tokens, strict=True):
            self._push(row, token)
        self._retire()

    def _push(self, row: _Row, token: int) -> None:
        row.produced += 1
        if token in self._eos:
            row.finish = "stop"
            return
        row.last = token
        text = row.text.push(token)
        if row.text.stopped:
            row.finish = "stop"
        elif row.produced >= row.job.request.params.max_tokens:
            row.finish = "length"
        if text or row.produced == 1:
            row.job.sink(Delta(text, first=row.produced == 1))

    def _retire(self) -> None:
        keep: list[int] = []
        for i, row in enumerate(self._rows):
            if row.job.cancelled and row.finish is None:
                row.finish = "cancelled"
            if row.finish is None:
                keep.append(i)
                continue
            if row.finish != "cancelled" and (rest := row.text.flush()):
                row.job.sink(Delta(rest))
            done = time.perf_counter() - row.job.queued_at
            self._seconds_per_job = 0.9 * self._seconds_per_job + 0.1 * done
            completion = row.produced - (1 if row.finish == "stop" and not row.text.stopped else 0)
            row.job.sink(
                Finished(row.finish, len(row.job.request.prompt_ids), completion, row.text.text)
            )
        if len(keep) == len(self._rows):
            return
        self._rows = [self._rows[i] for i in keep]
        if not keep:
            self._batch = None
        elif self._batch is not None:
            self._batch.keep(keep)

    def _fail_all(self, admitted: list[Job], message: str) -> None:
        jobs = {id(r.job): r.job for r in self._rows} | {id(j): j for j in admitted}
        for job in jobs.values():
            job.sink(Failed(message))
        self._rows, self._batch = [], None


def _run_command(fn: Callable[[], Any], future: Future[Any]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(fn())
    except BaseException as exc:
        future.set_exception(exc)
