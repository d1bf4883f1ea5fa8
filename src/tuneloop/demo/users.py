"""Simulated users for the demo: they ask support questions, read the ticket, give a thumb.

A user knows what they asked about and how urgent it is. They read the answer the way a
customer reads a support app's reply: was a ticket filed, and was a problem that cannot wait
filed as such? Chat without a ticket, or a stolen card filed as low priority, gets a
thumbs-down. They ask through the
OpenAI-compatible API with their own user id, so the server's sticky split sends each of them
to one arm, and send their thumb to ``/v1/feedback``.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from tuneloop.demo import templates as tpl
from tuneloop.demo.generate import clean_traffic

_INTENT = re.compile(r'"intent":\s*"(\w+)"')
_PRIORITY = re.compile(r'"priority":\s*"(\w+)"')
EXPECTED_PRIORITY = {i.name: i.priority for i in tpl.INTENTS}


@dataclass(frozen=True)
class Ask:
    messages: list[dict[str, str]]
    intent: str


def asks(seed: int, n: int, start: datetime, weights: dict[str, float] | None = None) -> list[Ask]:
    """Fresh questions (never ingested, never in the eval set) and what they are about."""
    out = []
    for row in clean_traffic(seed, n, start, days=1, prefix="live", weights=weights):
        if "prompt" in row:
            messages = [{"role": "user", "content": row["prompt"]}]
        else:
            first_answer = next(
                i for i, m in enumerate(row["messages"]) if m["role"] == "assistant"
            )
            messages = row["messages"][:first_answer]
        out.append(Ask(messages, row["meta"]["intent"]))
    return out


URGENT = frozenset(name for name, priority in EXPECTED_PRIORITY.items()
                   if priority in ("high", "urgent"))  # fmt: skip


def satisfied(answer: str, intent: str) -> bool:
    """A ticket was filed (the answer has an intent and a priority), and a problem that cannot
    wait (a stolen card, fraud, a missing wire) was not filed as low priority.

    Users do not check the intent's exact label; they do notice being told their fraud report
    can wait.
    """
    got_intent, got_priority = _INTENT.search(answer), _PRIORITY.search(answer)
    if not (got_intent and got_priority):
        return False
    return not (intent in URGENT and got_priority.group(1) == "low")


@dataclass
class Tally:
    """What the users saw, per arm: requests and thumbs."""

    requests: Counter[str] = field(default_factory=Counter)
    up: Counter[str] = field(default_factory=Counter)
    down: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, arm: str, good: bool) -> None:
        with self.lock:
            self.requests[arm] += 1
            (self.up if good else self.down)[arm] += 1

    def rows(self) -> dict[str, dict[str, Any]]:
        return {arm: {"requests": n, "thumbs_down_rate": self.down[arm] / n}
                for arm, n in self.requests.items()}  # fmt: skip


class Users:
    """``count`` users asking one after another until ``stop`` is set."""

    def __init__(
        self, url: str, questions: Sequence[Ask], count: int, max_tokens: int, system: str
    ) -> None:
        self.url, self.questions, self.count, self.max_tokens = url, questions, count, max_tokens
        self.system = system  # the app's system prompt, sent when the question has none
        self.stop = threading.Event()
        self.tally = Tally()
        self._threads = [threading.Thread(target=self._user, args=(k,), daemon=True)
                         for k in range(count)]  # fmt: skip

    def __enter__(self) -> Users:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _user(self, k: int) -> None:
        with httpx.Client(base_url=self.url, timeout=120) as client:
            turn = 0
            while not self.stop.is_set():
                ask = self.questions[(k + turn * self.count) % len(self.questions)]
                turn += 1
                try:
                    self._one(client, f"customer-{k}-{turn % 5}", ask)
                except httpx.HTTPError:
                    self.tally.errors += 1
                    time.sleep(0.5)

    def _one(self, client: httpx.Client, user: str, ask: Ask) -> None:
        messages = ask.messages
        if messages[0]["role"] != "system":
            messages = [{"role": "system", "content": self.system}, *messages]
        body = {"model": "production", "messages": messages, "user": user,
                "max_tokens": self.max_tokens, "temperature": 0}  # fmt: skip
        r = client.post("/v1/chat/completions", json=body)
        r.raise_for_status()
        answer = r.json()["choices"][0]["message"]["content"]
        good = satisfied(answer, ask.intent)
        self.tally.add(r.headers.get("x-tuneloop-arm", "?"), good)
        thumbs = {"response_id": r.json()["id"], "thumbs": "up" if good else "down"}
        client.post("/v1/feedback", json=thumbs).raise_for_status()
