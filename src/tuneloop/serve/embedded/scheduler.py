"""The worker thread that owns the model: it admits requests, runs decode steps, loads adapters.

One thread does all model work, so peft's adapter bookkeeping is never changed under a running
forward pass: adapter loads and unloads are queued as commands and run between two steps.
Each loop: run pending commands; take waiting requests in; then, with nothing generating, read
their prompts at full speed (one prefill for many, up to a token budget); with rows generating,
read a measured chunk of the waiting prompts in the same pass as the rows' next tokens
(``mixed.py``, ``prefill.py``), so a long prompt never stalls the others for more than a
bounded step; retire rows that finished, hit their limit, failed, or whose client went away.
A prompt of ``lane_tokens`` or more generates in a lane of its own (``mixed.Lane``) instead of
joining the padded batch, so the short rows never attend over its width.

Failures stay as small as they can: what belongs to one row (its sampler, its stop strings, its
text, its events) fails that row alone; a failed prefill fails the requests it was admitting;
a failed decode step (out of memory) fails the rows of that step. Each is logged with the
request ids, and the thread goes on serving new requests.
"""

from __future__ import annotations

import inspect
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import torch
from transformers import DynamicCache

from tuneloop.serve.embedded.constrain import Grammars
from tuneloop.serve.embedded.kv import KVBatch, left_padded, positions_of
from tuneloop.serve.embedded.mixed import (
    Lane,
    MixedCache,
    PromptCache,
    Segment,
    fusable,
    fused_forward,
)
from tuneloop.serve.embedded.prefill import ALONE_CHUNK, Budget, Prefilling, plan
from tuneloop.serve.embedded.rows import Job, Row
from tuneloop.serve.embedded.tokens import TokenText
from tuneloop.serve.generation import BackendStats, Failed, Finished, QueueFullError

BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in adapter_names
log = logging.getLogger("tuneloop.serve.generate")
__all__ = ["BASE_ADAPTER", "Job", "Scheduler"]


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


def _one(job: Job) -> dict[str, str]:
    """A log record's ``extra``: the request it is about (tuneloop.logs prints it)."""
    return {"request_id": job.request.request_id}


def _ids(jobs: list[Job]) -> str:
    return ", ".join(j.request.request_id for j in jobs)


def _all(jobs: list[Job]) -> dict[str, list[str]]:
    """A log record's ``extra`` for a step that failed every request it held."""
    return {"request_ids": [j.request.request_id for j in jobs]}


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
        prefill_share: float = 0.5,
        prefill_chunk: int | None = None,
        lane_tokens: int = 1024,
    ) -> None:
        self.max_batch = max_batch
        self.lane_tokens = lane_tokens
        self.max_waiting = max_waiting
        self.prefill_tokens = prefill_tokens
        self._cond = threading.Condition()
        self._waiting: deque[Job] = deque()
        self._commands: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._rows: list[Row] = []
        self._prefilling: list[Prefilling] = []
        self._lanes: list[Lane] = []
        self._batch: KVBatch | None = None
        self.budget = Budget(prefill_share, prefill_chunk)
        self._stopped = False
        self._ended: deque[float] = deque(maxlen=64)  # when rows ended: the drain rate
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
        self._names = TokenText(tokenizer)
        self.vocab = int(model.get_output_embeddings().weight.shape[0])
        self.grammars = Grammars(tokenizer, self.vocab)
        self.fused = fusable(model)

    # -- the request side (any thread) -----------------------------------------------------------

    def submit(self, job: Job) -> None:
        with self._cond:
            if len(self._waiting) >= self.max_waiting:
                raise QueueFullError(self.retry_after())
            self._waiting.append(job)
            self._cond.notify()

    def drain_rate(self) -> float | None:
        """Requests that ended per second over the last two minutes (None: too few to say).

        Counted up to now, so a stall lowers the rate instead of leaving an old, fast one."""
        now = time.perf_counter()
        recent = [t for t in self._ended if now - t < 120.0]
        if len(recent) < 2 or now <= recent[0]:
            return None
        return len(recent) / (now - recent[0])

    def retry_after(self) -> float:
        """Seconds until the waiting queue has drained at the measured rate."""
        rate = self.drain_rate()
        if rate is None:  # nothing ended lately: a step's worth of guess, the least we can say
            return 1.0
        return max(1.0, float(math.ceil(len(self._waiting) / rate)))

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

    @property
    def columns(self) -> int:
        """How wide the padded batch cache is now: what every short row attends over."""
        batch = self._batch
        return batch.columns if batch is not None else 0

    def _running(self) -> int:
        """Requests taken in: generating in the batch or a lane, or being read."""
        return len(self._rows) + len(self._prefilling) + len(self._lanes)

    def stats(self) -> BackendStats:
        return BackendStats(
            running=self._running(), waiting=len(self._waiting), capacity=self.max_batch
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
                while not (self._stopped or self._waiting or self._commands or self._rows
                           or self._prefilling or self._lanes):  # fmt: skip
                    self._cond.wait()
                if self._stopped:
                    break
                commands = list(self._commands)
                self._commands.clear()
                arrived = self._take_waiting()
            for fn, future in commands:
                _run_command(fn, future)
            self._arrive(arrived)
            self._work()
        self._end_rows(self._rows, "the server is shutting down")
        self._end_lanes("the server is shutting down")
        for p in self._prefilling:
            self._fail_prefill(p, "the server is shutting down")
        for job in self._waiting:
            job.sink(Failed("the server is shutting down"))

    def _work(self) -> None:
        """One step: the prompts alone, the rows with chunks of the prompts, or the rows."""
        self._drop_cancelled()
        if self._lanes:  # lanes exist only where passes are fused
            self._fused_step()
        elif self._rows and self._prefilling:
            if self.fused:
                self._fused_step()
            else:
                for p, n in plan(self._prefilling, self.budget.tokens()):
                    self._chunk(p, n)
                self._step()
        elif self._prefilling:
            self._prefill_alone()
        elif self._rows:
            self._step()

    def _take_waiting(self) -> list[Job]:
        """Waiting jobs that fit in the batch (prompts on their way in count as rows)."""
        taken: list[Job] = []
        while self._waiting and self._running() + len(taken) < self.max_batch:
            job = self._waiting.popleft()
            if job.cancelled:
                job.sink(Finished("cancelled", job.prompt_tokens, 0))
                continue
            taken.append(job)
        return taken

    def _arrive(self, jobs: list[Job]) -> None:
        for row in self._start_rows(jobs):
            n = row.job.prompt_tokens
            if self._lane_bound(n):  # sized for its answer too: pages are touched when written
                cache: Any = PromptCache(n + row.job.request.params.max_tokens)
            else:
                cache = PromptCache(n) if self.fused else DynamicCache(config=self.model.config)
            self._prefilling.append(Prefilling(row, cache))

    def _lane_bound(self, prompt_tokens: int) -> bool:
        return self.fused and prompt_tokens >= self.lane_tokens

    def _drop_cancelled(self) -> None:
        for p in [p for p in self._prefilling if p.row.job.cancelled]:
            self._prefilling.remove(p)
            p.row.job.sink(Finished("cancelled", p.row.job.prompt_tokens, 0))

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

    def _start_rows(self, jobs: list[Job]) -> list[Row]:
        """A row per job; a job whose row cannot start (its sampler refused) fails alone."""
        rows = []
        for job in jobs:
            try:
                rows.append(Row.start(job, self.tokenizer, self.vocab, self.grammars))
            except Exception as exc:
                log.exception("request %s could not start", job.request.request_id, extra=_one(job))
                job.sink(Failed(f"generation failed: {type(exc).__name__}: {exc}"))
        return rows

    def _prefill_alone(self) -> None:
        """Nothing is generating: prompts not begun are read together (up to the token
        budget, at least one); a prompt begun while others streamed goes on in large chunks."""
        fresh: list[Prefilling] = []
        budget = self.prefill_tokens
        for p in self._prefilling:
            lane = self._lane_bound(len(p.ids))
            if p.done == 0 and not lane and (not fresh or len(p.ids) <= budget):
                fresh.append(p)
                budget -= len(p.ids)
        first = self._prefilling[0]
        if fresh:
            self._admit(fresh)
        elif self.fused:  # a lane's prompt not begun is read whole, as ``_admit`` would
            self._fused_step(first.left if first.done == 0 else ALONE_CHUNK)
        else:
            self._chunk(first, min(first.left, ALONE_CHUNK))

    def _admit(self, ready: list[Prefilling]) -> None:
        """Prefill whole prompts together and join them to the running batch."""
        for p in ready:
            self._prefilling.remove(p)
        rows = [p.row for p in ready]
        try:
            ids, mask = left_padded([list(r.job.request.prompt_ids) for r in rows], self._pad)
            cache = DynamicCache(config=self.model.config)
            logits = self._forward(
                [r.job for r in rows],
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions_of(mask),
                **{self._cache_kw: cache},
            )
        except Exception as exc:  # the running rows' cache is untouched: they go on
            jobs = [r.job for r in rows]
            log.exception("prefill failed for %s", _ids(jobs), extra=_all(jobs))
            self._end_rows(rows, f"generation failed: {type(exc).__name__}: {exc}")
            return
        self._join(KVBatch(cache, mask, mask.sum(dim=1)), rows, logits)

    def _join(self, joined: KVBatch, rows: list[Row], logits: torch.Tensor) -> None:
        if self._batch is None:
            self._batch = joined
        else:
            self._batch.extend(joined)
        self._rows.extend(rows)
        self._take(rows, logits)

    def _chunk(self, p: Prefilling, n: int) -> None:
        """The next ``n`` tokens of one prompt in a pass of its own; it joins when complete."""
        start, end = p.done, p.done + n
        try:
            logits = self._forward(
                [p.row.job],
                input_ids=torch.tensor([p.ids[start:end]], dtype=torch.long),
                attention_mask=torch.ones((1, end), dtype=torch.long),
                position_ids=torch.arange(start, end)[None],
                **{self._cache_kw: p.cache},
            )
        except Exception as exc:  # its own cache: nobody else is touched
            log.exception(
                "prefill failed for %s", p.row.job.request.request_id, extra=_one(p.row.job)
            )
            self._fail_prefill(p, f"generation failed: {type(exc).__name__}: {exc}")
            return
        p.done = end
        if p.left == 0:
            self._complete(p, logits)

    def _complete(self, p: Prefilling, logits: torch.Tensor) -> None:
        """A prompt read in full joins the running batch, with its first token."""
        self._prefilling.remove(p)
        mask = torch.ones((1, p.done), dtype=torch.long)
        cache = p.cache
        if isinstance(cache, PromptCache):
            if self._lane_bound(p.done):
                self._lanes.append(Lane(p.row, cache, p.done))
                self._take([p.row], logits)
                return
            if self._batch is not None:  # written once into the stacked cache, no copy before
                self._batch.extend_with(*cache.upto(p.done), mask, mask.sum(dim=1))
                self._rows.append(p.row)
                self._take([p.row], logits)
                return
            cache = cache.as_dynamic(self.model.config, p.done)
        self._join(KVBatch(cache, mask, mask.sum(dim=1)), [p.row], logits)

    def _fail_prefill(self, p: Prefilling, message: str) -> None:
        if p in self._prefilling:
            self._prefilling.remove(p)
        p.row.fail(message)
        _close(p.row)

    def _fused_step(self, budget: int | None = None) -> None:
        """The rows' and lanes' next tokens and chunks of the waiting prompts, in one pass
        (or, with nothing generating, chunks alone)."""
        batch, rows, lanes = self._batch, list(self._rows), list(self._lanes)
        chunks = plan(self._prefilling, budget or self.budget.tokens()) if self._prefilling else []
        segments = [lane.segment() for lane in lanes]
        segments += [Segment(p.cache, list(p.ids[p.done : p.done + n]), p.done) for p, n in chunks]
        if rows:
            assert batch is not None
            step_mask, positions = batch.step_inputs()
        else:
            step_mask = positions = torch.zeros((0, 1), dtype=torch.long)
        ids = [row.last for row in rows] + [t for seg in segments for t in seg.ids]
        where = [int(x) for x in positions[:, 0]]
        where += [seg.past + i for seg in segments for i in range(len(seg.ids))]
        generating = len(rows) + len(lanes)
        keep, at = list(range(generating)), generating
        for (p, n), seg in zip(chunks, segments[len(lanes) :], strict=True):
            at += len(seg.ids)
            if n == p.left:
                keep.append(at - 1)
        jobs = [r.job for r in rows] + [lane.row.job for lane in lanes]
        jobs += [p.row.job for p, n in chunks for _ in range(n)]
        cache = batch.cache if batch is not None and rows else None
        mixed = MixedCache(cache, len(rows), step_mask.bool()[:, None, None, :], segments)
        started = time.perf_counter()
        try:
            with self._adapters(jobs):
                logits = fused_forward(self.model, mixed, ids, where, keep, self._cache_kw)
        except Exception as exc:  # the batch's cache may be half-written: the step's rows fail
            log.exception("fused step failed for %s", _ids(jobs), extra=_all(jobs))
            message = f"generation failed: {type(exc).__name__}: {exc}"
            self._end_rows(self._rows, message)
            self._end_lanes(message)
            for p, _ in chunks:
                self._fail_prefill(p, message)
            return
        self._observe(time.perf_counter() - started, generating, len(ids) - generating)
        if rows:
            assert batch is not None
            batch.advance(step_mask)
        for lane in lanes:
            lane.length += 1
        for p, n in chunks:
            p.done += n
        if generating:
            self._take(rows + [lane.row for lane in lanes], logits[:generating])
        finished = [p for p, _ in chunks if p.left == 0]
        for i, p in enumerate(finished):
            self._complete(p, logits[generating + i : generating + i + 1])

    def _observe(self, seconds: float, generating: int, prompt_tokens: int) -> None:
        """A fused step with no chunk is the plain step the chunk budget is measured against."""
        if not generating:
            return
        self.steps += 1
        if prompt_tokens:
            self.budget.observe_fused(seconds, prompt_tokens)
        else:
            self.budget.observe_decode(seconds)

    @contextmanager
    def _adapters(self, jobs: list[Job]) -> Iterator[None]:
        """Each token's adapter: one for all (peft's plain path), else peft's per-entry hooks."""
        if not hasattr(self.model, "peft_config"):
            yield
            return
        names = [j.request.adapter or BASE_ADAPTER for j in jobs]
        if len(set(names)) == 1 and names[0] != BASE_ADAPTER:
            self._activate(names[0])
            yield
            return
        with self.model._enable_peft_forward_hooks(adapter_names=names):
            yield

    def _step(self) -> None:
        batch = self._batch
        assert batch is not None
        started = time.perf_counter()
        try:
            step_mask, positions = batch.step_inputs()
            ids = torch.tensor([[row.last] for row in self._rows], dtype=torch.long)
            logits = self._forward(
                [row.job for row in self._rows],
                input_ids=ids,
                attention_mask=step_mask,
                position_ids=positions,
                **{self._cache_kw: batch.cache},
            )
        except Exception as exc:  # out of memory, say: this step's rows fail, the server goes on
            jobs = [r.job for r in self._rows]
            log.exception("decode step failed for %s", _ids(jobs), extra=_all(jobs))
            self._end_rows(self._rows, f"generation failed: {type(exc).__name__}: {exc}")
            return
        self.budget.observe_decode(time.perf_counter() - started)
        batch.advance(step_mask)
        self.steps += 1
        self._take(self._rows, logits)

    def _take(self, rows: list[Row], logits: torch.Tensor) -> None:
        """Give each row its next token, each in its own ``try``; then retire the rows done."""
        greedy = logits.argmax(dim=-1).tolist()
        for i, row in enumerate(rows):
            try:
                row.advance(logits[i], int(greedy[i]), self._eos, self._names)
            except Exception as exc:
                log.exception("request %s failed", row.job.request.request_id, extra=_one(row.job))
                row.fail(f"generation failed: {type(exc).__name__}: {exc}")
        self._retire()

    def _retire(self) -> None:
        self._retire_lanes()
        keep: list[int] = []
        for i, row in enumerate(self._rows):
            if not _ended(row):
                keep.append(i)
                continue
            self._ended.append(time.perf_counter())
            _close(row)
        if len(keep) == len(self._rows):
            return
        self._rows = [self._rows[i] for i in keep]
        if not keep:
            self._batch = None
        elif self._batch is not None:
            self._batch.keep(keep)

    def _retire_lanes(self) -> None:
        for lane in list(self._lanes):
            if _ended(lane.row):
                self._lanes.remove(lane)
                self._ended.append(time.perf_counter())
                _close(lane.row)

    def _end_lanes(self, message: str) -> None:
        for lane in self._lanes:
            lane.row.fail(message)
            _close(lane.row)
        self._lanes = []

    def _end_rows(self, rows: list[Row], message: str) -> None:
        """Fail ``rows`` and take them out of the batch (the running ones: all of them)."""
        for row in rows:
            row.fail(message)
            _close(row)
        if rows is self._rows:
            self._rows, self._batch = [], None


def _ended(row: Row) -> bool:
    """Whether ``row`` is done, marking it cancelled first when its client has gone."""
    if row.job.cancelled and not row.done:
        row.finish = "cancelled"
    return row.done


def _close(row: Row) -> None:
    try:
        row.close()
    except Exception:  # its client's loop has gone: nobody is left to tell
        log.exception(
            "could not send the end of request %s", row.job.request.request_id, extra=_one(row.job)
        )


def _run_command(fn: Callable[[], Any], future: Future[Any]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(fn())
    except BaseException as exc:
        future.set_exception(exc)
