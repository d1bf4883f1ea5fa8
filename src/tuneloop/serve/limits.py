"""Per-key limits, so that one tenant cannot take the server from the others.

Each API key may carry four limits (in ``[serve.api_keys.NAME]``, or in ``$TUNELOOP_API_KEYS``
as ``NAME:KEY[:admin][:concurrent=4][:tpm=20000][:prompt=4000][:max_tokens=512]``):

* ``max_concurrent``: requests at once; the next one gets a 429;
* ``tokens_per_minute``: prompt and completion tokens over the last 60 s. A request reserves
  its prompt and its ``max_tokens`` when it is admitted (what OpenAI counts too), and gives
  back what it did not use when it ends; one that would go over waits (429 with the seconds
  until enough of the window has passed);
* ``max_prompt_tokens`` and ``max_tokens``: the longest prompt, and the most new tokens, one
  request may ask for (a 400 naming the limit).

The limits are kept per server process: behind a load balancer over N replicas a key may use
up to N times them. A 429's ``Retry-After`` is measured, never guessed: the window's own
arithmetic here, the queue's drain rate in the scheduler.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

from tuneloop.config import KeyLimits as KeyLimits  # [serve.api_keys.NAME]'s limits
from tuneloop.serve.errors import APIError

WINDOW_S = 60.0


@dataclass(slots=True)
class Ticket:
    """One admitted request: whose, and the tokens it reserved in its key's window."""

    tenant: str
    entry: list[float] | None  # [time, tokens] in the window, corrected when it ends


def _busy(message: str, seconds: float, code: str) -> APIError:
    wait = max(1, math.ceil(seconds))
    headers = {"Retry-After": str(wait)}
    return APIError(429, f"{message}; retry after {wait} s", code, headers=headers)


def check_request(limits: KeyLimits, tenant: str, prompt_tokens: int, max_tokens: int) -> None:
    """A 400 for a request no retry would make acceptable for this key."""
    if limits.max_tokens is not None and max_tokens > limits.max_tokens:
        raise APIError(400, f"max_tokens {max_tokens} is over the {limits.max_tokens} this key "
                       f"({tenant}) may ask for; ask for fewer", "over_key_limit",
                       "max_tokens")  # fmt: skip
    if limits.max_prompt_tokens is not None and prompt_tokens > limits.max_prompt_tokens:
        raise APIError(400, f"the prompt takes {prompt_tokens} tokens, over the "
                       f"{limits.max_prompt_tokens} this key ({tenant}) may send; shorten it",
                       "over_key_limit", "messages")  # fmt: skip


class Limiter:
    """Concurrency and tokens per minute, per key, in this process."""

    def __init__(self) -> None:
        self._now = time.monotonic
        self._lock = threading.Lock()
        self._running: Counter[str] = Counter()
        self._windows: dict[str, deque[list[float]]] = {}

    def admit(self, tenant: str, limits: KeyLimits, reserve: int) -> Ticket:
        """Let the request in, or raise a 429 saying when it may come back."""
        with self._lock:
            cap = limits.max_concurrent
            if cap is not None and self._running[tenant] >= cap:
                raise _busy(f"this key ({tenant}) has {limits.max_concurrent} requests running, "
                            "its limit", 1.0, "key_concurrency")  # fmt: skip
            entry = None
            if limits.tokens_per_minute is not None:
                entry = self._reserve(tenant, limits.tokens_per_minute, reserve)
            self._running[tenant] += 1
            return Ticket(tenant, entry)

    def _reserve(self, tenant: str, per_minute: int, tokens: int) -> list[float]:
        now = self._now()
        window = self._windows.setdefault(tenant, deque())
        while window and window[0][0] <= now - WINDOW_S:
            window.popleft()
        used = sum(e[1] for e in window)
        if tokens > per_minute:
            raise APIError(400, f"this request may use {tokens} tokens (prompt and max_tokens), "
                           f"over this key's {per_minute} per minute; ask for fewer",
                           "over_key_limit", "max_tokens")  # fmt: skip
        if used + tokens > per_minute:
            freed, wait = used + tokens - per_minute, WINDOW_S
            for stamp, spent in window:  # the oldest entries leave the window first
                freed -= spent
                if freed <= 0:
                    wait = stamp + WINDOW_S - now
                    break
            raise _busy(f"this key ({tenant}) used {int(used)} of its {per_minute} tokens per "
                        "minute", wait, "key_tokens_per_minute")  # fmt: skip
        entry = [now, float(tokens)]
        window.append(entry)
        return entry

    def done(self, ticket: Ticket, used: int) -> None:
        """The request ended having used ``used`` tokens: give back the rest of its reservation."""
        with self._lock:
            self._running[ticket.tenant] -= 1
            if self._running[ticket.tenant] <= 0:
                del self._running[ticket.tenant]
            if ticket.entry is not None:
                ticket.entry[1] = min(ticket.entry[1], float(used))
