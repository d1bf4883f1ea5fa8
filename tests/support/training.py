"""Records for the trainer and a hook that records what each step trained on."""

from __future__ import annotations

from typing import Any

from tuneloop.records import Message, Record

QUESTIONS = ["the card was lost", "reset my password", "fee for a wire transfer", "thank you"]


def records(n: int) -> list[Record]:
    """``n`` chat records answered by one of three intents: enough signal for a loss to fall."""
    out = []
    for i in range(n):
        q = QUESTIONS[i % len(QUESTIONS)] + f" {i}"
        msgs = (Message("user", q), Message("assistant", f'{{"intent": "x{i % 3}"}}'))
        out.append(Record(id=f"r{i}", shape="chat", messages=msgs))
    return out


class Recorder:
    """A trainer hook: the record ids of every step; ``stop_at``: raise as a kill would there."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.steps: dict[int, list[str]] = {}
        self.stop_at = stop_at

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        if event == "step":
            self.steps[data["step"]] = data["records"]
            if data["step"] == self.stop_at:
                raise KeyboardInterrupt("killed")
