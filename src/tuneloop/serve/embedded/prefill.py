"""Prompts being read in chunks while others stream, and how many tokens each step may carry.

While rows are generating, an arriving prompt is read a chunk per decode step, so the running
rows wait at most one step of bounded length for their next token (vLLM's and transformers'
chunked prefill). How long a chunk may be is measured, not set (see :class:`Budget`).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from tuneloop.serve.embedded.rows import Row

FIRST_BUDGET = 32  # tokens per step before any cost is measured
LEAST = 8  # a prompt always moves
ALONE_CHUNK = 512  # a prompt continued with nothing running: bounded attention memory
MOST = 4096
SHORT = 256  # a prompt this short is read in one step
FRESH_S = 1.0  # fused steps older than this say nothing of the prompt read now


@dataclass(eq=False)
class Prefilling:
    """A prompt on its way in: its row (started), its cache, how much of it is read."""

    row: Row
    cache: Any  # a PromptCache (fused passes) or a DynamicCache (passes of its own)
    done: int = 0

    @property
    def ids(self) -> tuple[int, ...]:
        return self.row.job.request.prompt_ids

    @property
    def left(self) -> int:
        return len(self.ids) - self.done


class Budget:
    """Prompt tokens a step may carry beside the running rows.

    A chunk costs a step twice: a fixed part (reading the prompt's cache so far, which grows
    with the prompt: ~50 ms at 6,000 tokens on two cores, as long as the weights' read) and a
    part per token. The fit ``extra = fixed + per_token * tokens`` over the last steps (their
    sizes vary by ±20% on purpose, so that the two parts can be told apart) gives each chunk
    ``share / (1 - share)`` of a plain step's time in tokens' own work: a step then costs
    ``decode + fixed + decode * share / (1 - share)``, and the prompt moves at that pace too.
    """

    def __init__(self, share: float = 0.5, fixed: int | None = None) -> None:
        self.share, self.fixed = share, fixed  # fixed: a set number of tokens per step
        self.decode_s: float | None = None  # a plain decode step, now
        self._seen: deque[tuple[float, int, float]] = deque(maxlen=12)  # (when, tokens, extra)
        self._turn = 0
        self._now = time.monotonic

    def observe_decode(self, seconds: float) -> None:
        self.decode_s = seconds if self.decode_s is None else 0.8 * self.decode_s + 0.2 * seconds

    def observe_fused(self, seconds: float, tokens: int) -> None:
        if self.decode_s is not None and tokens > 0:
            self._seen.append((self._now(), tokens, seconds - self.decode_s))

    def _recent(self) -> list[tuple[int, float]]:
        """What the last second of fused steps cost: older steps read other prompts."""
        now = self._now()
        return [(n, extra) for when, n, extra in self._seen if now - when <= FRESH_S]

    def per_token_s(self) -> float | None:
        """The least-squares slope of the extra time over the chunk's tokens (None: unknown)."""
        seen = self._recent()
        if len(seen) < 3:
            return None
        xs = [float(x) for x, _ in seen]
        ys = [y for _, y in seen]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        if var == 0:
            return max(my / mx, 1e-6)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var
        return max(slope, 1e-6)

    def tokens(self) -> int:
        if self.fixed is not None:
            return self.fixed
        per_token = self.per_token_s()
        if self.decode_s is None or per_token is None:
            wanted = float(FIRST_BUDGET)
        else:
            wanted = self.decode_s * self.share / (1.0 - self.share) / per_token
        recent = self._recent()
        if recent:  # at most twice the last chunk: a new prompt's cost is learnt, not assumed
            wanted = min(wanted, 2.0 * recent[-1][0])
        self._turn += 1
        jitter = (0.8, 1.0, 1.2)[self._turn % 3]
        return max(LEAST, min(MOST, int(wanted * jitter)))


def plan(prefilling: list[Prefilling], budget: int) -> list[tuple[Prefilling, int]]:
    """Chunks for this step: the oldest prompts first, ``budget`` tokens in all; a short prompt
    not begun is read whole (a chunk of it would cost about as much as all of it, and its
    first token would wait for nothing)."""
    out = []
    for p in prefilling:
        short = p.done == 0 and p.left <= SHORT
        if budget <= 0 and not short:
            continue
        n = p.left if short else min(p.left, budget)
        out.append((p, n))
        budget -= n
    return out
