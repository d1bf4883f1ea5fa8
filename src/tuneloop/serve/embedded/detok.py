"""Turning tokens into text as they arrive, and stopping at stop strings.

Decoding one token at a time breaks multi-byte characters and words that tokenizers merge, so
each step decodes a short window behind the newest token and emits only what became stable
(the offsets scheme of text-generation-inference and vLLM). Text that could be the start of a
stop string is held back until it is known not to be one, so a stop string never reaches the
client, even in part.
"""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"  # what a decoder yields for an incomplete UTF-8 sequence


class IncrementalText:
    def __init__(self, tokenizer: Any, stop: tuple[str, ...] = ()) -> None:
        self._tok = tokenizer
        self._ids: list[int] = []
        self._prefix = 0
        self._read = 0
        self._stop = tuple(s for s in stop if s)
        self._held = ""  # decoded but not yet emitted (might begin a stop string)
        self.text = ""  # everything emitted so far
        self.stopped = False

    def _decode(self, ids: list[int]) -> str:
        return str(self._tok.decode(ids, skip_special_tokens=True))

    def push(self, token_id: int) -> str:
        """Add one token; return the text that may now be sent (often empty)."""
        self._ids.append(token_id)
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) <= len(before) or after.endswith(REPLACEMENT):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return self._release(self._held + after[len(before) :])

    def _release(self, pending: str, final: bool = False) -> str:
        for stop in self._stop:
            at = pending.find(stop)
            if at >= 0:
                self.stopped = True
                self._held = ""
                return self._emit(pending[:at])
        keep = 0 if final else max((_overlap(pending, s) for s in self._stop), default=0)
        self._held = pending[len(pending) - keep :] if keep else ""
        return self._emit(pending[: len(pending) - keep])

    def _emit(self, text: str) -> str:
        self.text += text
        return text

    def flush(self) -> str:
        """At the end: whatever was held back or still undecoded, unless a stop string ended it."""
        if self.stopped:
            return ""
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        tail = after[len(before) :] if len(after) > len(before) else ""
        self._prefix = self._read = len(self._ids)
        return self._release(self._held + tail, final=True)


def _overlap(text: str, stop: str) -> int:
    """The length of the longest end of ``text`` that is a beginning of ``stop``."""
    for size in range(min(len(text), len(stop) - 1), 0, -1):
        if text.endswith(stop[:size]):
            return size
    return 0
