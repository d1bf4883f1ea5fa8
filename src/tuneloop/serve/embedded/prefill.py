"""Prompts being read in chunks while others stream, and how many tokens each step may carry.

While rows are generating, an arriving prompt is read a chunk per decode step, so the running
rows wait at most one step of bounded length for their next token (vLLM's and transformers'
chunked prefill). How long a chunk may be is measured, not set: ``share`` is the part of each
step's time the prompts may take (0.5: a step at most twice a plain decode step, which is also
the slowest a prompt may be read while others stream if it is to arrive by twice its lone
prefill time). The budget follows the measured cost of a plain step and of a prompt token in a
fused step, which grows with the prompt's length (its attention reads everything before it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuneloop.serve.embedded.rows import Row

FIRST_BUDGET = 32  # tokens per step before any cost is measured
LEAST = 8  # a prompt always moves
ALONE_CHUNK = 512  # a prompt continued with nothing running: bounded attention memory


@dataclass(eq=False)
class Prefilling:
    """A prompt on its way in: its row (started), its cache, how much of it is read."""

    row: Row
    cache: Any  # a DynamicCache of batch 1
    done: int = 0

    @property
    def ids(self) -> tuple[int, ...]:
        return self.row.job.request.prompt_ids

    @property
    def left(self) -> int:
        return len(self.ids) - self.done


class Budget:
    """Prompt tokens a step may carry beside the running rows: ``share`` of the step's time."""

    def __init__(self, share: float = 0.5, fixed: int | None = None) -> None:
        self.share, self.fixed = share, fixed  # fixed: a set number of tokens per step
        self.decode_s: float | None = None  # a plain decode step, now
        self.token_s: float | None = None  # one more prompt token in a fused step, now

    def observe_decode(self, seconds: float) -> None:
        self.decode_s = seconds if self.decode_s is None else 0.8 * self.decode_s + 0.2 * seconds

    def observe_fused(self, seconds: float, tokens: int) -> None:
        if self.decode_s is None or tokens <= 0:
            return
        per_token = max(seconds - self.decode_s, 1e-6) / tokens
        self.token_s = per_token if self.token_s is None else 0.5 * self.token_s + 0.5 * per_token

    def tokens(self) -> int:
        if self.fixed is not None:
            return self.fixed
        if self.decode_s is None or self.token_s is None:
            return FIRST_BUDGET
        extra = self.decode_s * self.share / (1.0 - self.share)
        return max(LEAST, int(extra / self.token_s))


def plan(prefilling: list[Prefilling], budget: int) -> list[tuple[Prefilling, int]]:
    """Chunks for this step: the oldest prompts first, ``budget`` tokens in all."""
    out = []
    for p in prefilling:
        if budget <= 0:
            break
        n = min(p.left, budget)
        out.append((p, n))
        budget -= n
    return out
