"""FeedbackBlock: use what users told us about an answer when choosing what to train on.

A correction is the best signal there is — the answer the model should have given — so it
replaces the model's answer and supersedes the thumbs and rating, which judged the replaced
answer. Without a correction, a thumbs-down answer must not be learned, and an optional
``min_rating`` drops low-rated ones. Records without any feedback are kept.

An answer the server cut at the request's token limit (``meta.finish_reason == "length"``) is
dropped too, whatever its thumbs: its text stops mid-sentence (or mid-JSON), and the chat
template closes the turn after it, so learning it teaches the model to end its answers there.
A user's thumbs-up judged what they read, not a finished answer. ``keep_cut`` keeps them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from tuneloop.curate.base import Drop, MapBlock
from tuneloop.records import Message, Record


def _replace_last_assistant(messages: tuple[Message, ...], answer: str) -> tuple[Message, ...]:
    """The messages with the last assistant turn's content replaced (appended if there is none)."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "assistant":
            return (*messages[:i], Message("assistant", answer), *messages[i + 1 :])
    return (*messages, Message("assistant", answer))


def apply_correction(record: Record, correction: str) -> Record:
    """The record with ``correction`` as its answer; text documents have no answer to replace."""
    if record.shape == "text":
        return record
    meta = {**record.meta, "corrected": True}
    if record.shape == "chat":
        messages = _replace_last_assistant(record.messages, correction)
        return record.with_content(messages=messages, meta=meta)
    return record.with_content(completion=correction, meta=meta)


def _below(rating: float | None, minimum: float | None) -> bool:
    """True when both are set and the rating is under the minimum (no rating: no verdict)."""
    return rating is not None and minimum is not None and rating < minimum


@dataclass(frozen=True)
class FeedbackBlock(MapBlock):
    """Apply corrections; drop thumbs-down answers and, optionally, low ratings."""

    name: ClassVar[str] = "feedback"
    min_rating: float | None = None
    keep_cut: bool = False

    def params(self) -> dict[str, Any]:
        return asdict(self)

    def process(self, record: Record) -> Record | Drop:
        if record.correction and record.correction.strip():
            return apply_correction(record, record.correction)
        if record.thumbs == "down":
            return Drop("thumbs_down")
        if record.meta.get("finish_reason") == "length" and not self.keep_cut:
            return Drop("cut_at_max_tokens", {"finish_reason": "length"})
        if _below(record.rating, self.min_rating):
            return Drop("low_rating", {"rating": record.rating, "min_rating": self.min_rating})
        return record
