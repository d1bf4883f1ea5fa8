"""One request in the running batch: its sampler, its text so far, how it ends.

Everything that belongs to one row — its sampler, its stop strings, turning its tokens into
text, its log-probabilities, sending its events — happens in :meth:`Row.advance`, which the
scheduler calls row by row inside its own ``try``: a row that fails ends with a ``Failed``
event, and every other row of the batch goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from tuneloop.serve.embedded.constrain import Grammars, Matcher
from tuneloop.serve.embedded.detok import IncrementalText
from tuneloop.serve.embedded.sampling import RowSampler, logprobs_of
from tuneloop.serve.embedded.tokens import TokenText
from tuneloop.serve.generation import (
    Delta,
    Event,
    Failed,
    Finished,
    FinishReason,
    GenerationRequest,
    TokenLogprob,
)
from tuneloop.serve.tools import HeldText, ToolCall, parse


@dataclass(eq=False)
class Job:
    request: GenerationRequest
    sink: Callable[[Event], None]  # must be safe to call from the worker thread
    cancelled: bool = False  # set by the request's side when its client goes away
    queued_at: float = field(default_factory=time.perf_counter)

    @property
    def prompt_tokens(self) -> int:
        return len(self.request.prompt_ids)


@dataclass(eq=False)
class Row:
    job: Job
    text: IncrementalText
    sampler: RowSampler
    last: int = 0
    produced: int = 0
    finish: FinishReason | None = None
    error: str | None = None
    pending: list[TokenLogprob] = field(default_factory=list)  # logprobs not yet sent
    matcher: Matcher | None = None  # the grammar the answer must follow
    held: HeldText | None = None  # tool calls, held back until the end
    ended_by_eos: bool = False  # the end token is produced but not part of the answer

    @classmethod
    def start(cls, job: Job, tokenizer: Any, vocab: int, grammars: Grammars) -> Row:
        """A row for ``job``; raises (a seed the generator refuses …) for that job alone."""
        request = job.request
        params = request.params
        return cls(
            job,
            IncrementalText(tokenizer, params.stop),
            RowSampler(params, vocab),
            matcher=grammars.matcher(params.grammar) if params.grammar else None,
            held=HeldText() if request.tool_mode else None,
        )

    @property
    def done(self) -> bool:
        return self.finish is not None or self.error is not None

    def advance(
        self, logits: torch.Tensor, greedy: int, eos: frozenset[int], names: TokenText
    ) -> None:
        """Choose this row's next token from its logits [vocab], and send what became text."""
        allowed = self.matcher.allowed() if self.matcher is not None else None
        token = self.sampler.choose(logits, greedy, allowed)
        k = self.job.request.params.logprobs
        if k is not None and token not in eos:  # the end token is not part of the answer
            self.pending.append(names.logprob(token, *logprobs_of(logits, token, k)))
        if self.matcher is not None and token not in eos:
            self.matcher.consume(token)
        self._push(token, eos)
        if self.matcher is not None and self.matcher.complete and self.finish is None:
            self.finish = "stop"  # the grammar is complete: nothing may follow

    def _push(self, token: int, eos: frozenset[int]) -> None:
        self.produced += 1
        if token in eos:
            self.finish, self.ended_by_eos = "stop", True
            return
        self.last = token
        text = self.text.push(token)
        if self.text.stopped:
            self.finish = "stop"
        elif self.produced >= self.job.request.params.max_tokens:
            self.finish = "length"
        if text or self.produced == 1:
            self._send(text, first=self.produced == 1)

    def _send(self, text: str, first: bool = False) -> None:
        if self.held is not None:
            text = self.held.push(text)
        logprobs, self.pending = tuple(self.pending), []
        self.job.sink(Delta(text, first=first, logprobs=logprobs))

    def fail(self, message: str) -> None:
        self.error = message

    def close(self) -> None:
        """Send the row's last events: what was held back, then Finished or Failed."""
        if self.error is not None:
            self.job.sink(Failed(self.error))
            return
        assert self.finish is not None
        rest = self.text.flush() if self.finish != "cancelled" else ""
        if rest or self.pending:
            self._send(rest)
        completion = self.produced - (1 if self.ended_by_eos else 0)
        finish: FinishReason = self.finish
        calls: tuple[ToolCall, ...] = ()
        if self.held is not None and self.finish != "cancelled":
            content, found = parse(self.held.rest())
            if content:
                self.job.sink(Delta(content))
            if found:
                finish, calls = "tool_calls", tuple(found)
        self.job.sink(Finished(finish, self.job.prompt_tokens, completion, self.text.text, calls))
