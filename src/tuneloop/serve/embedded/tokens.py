"""A token's text and raw bytes, as OpenAI's ``logprobs`` reports them.

Byte-level BPE vocabularies (GPT-2's, SmolLM2's, Llama 3's) spell each byte as one printable
character; mapping those back gives the token's exact bytes, including the half of a
multi-byte character that one token may hold (its text alone would be a replacement
character). Other vocabularies fall back to the decoded text's UTF-8 bytes.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from transformers.convert_slow_tokenizer import bytes_to_unicode

from tuneloop.serve.generation import TokenLogprob


@cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable spelling of the 256 byte values (transformers' table), reversed."""
    table: dict[int, str] = bytes_to_unicode()  # type: ignore[no-untyped-call]
    return {c: b for b, c in table.items()}


def _is_byte_level(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = getattr(backend, "decoder", None)
    return type(decoder).__name__ == "ByteLevel"


class TokenText:
    """Cached text and bytes of token ids for one tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        self._tok = tokenizer
        self._byte_level = _is_byte_level(tokenizer)
        self._special = set(getattr(tokenizer, "all_special_ids", []) or [])
        self._cache: dict[int, tuple[str, tuple[int, ...]]] = {}

    def of(self, token_id: int) -> tuple[str, tuple[int, ...]]:
        found = self._cache.get(token_id)
        if found is None:
            found = self._cache[token_id] = self._spell(token_id)
        return found

    def _spell(self, token_id: int) -> tuple[str, tuple[int, ...]]:
        piece = self._tok.convert_ids_to_tokens(token_id)
        if token_id in self._special or piece is None:
            text = str(piece or "")
            return text, tuple(text.encode("utf-8"))
        if self._byte_level:
            table = _byte_decoder()
            if all(c in table for c in piece):
                raw = bytes(table[c] for c in piece)
                return raw.decode("utf-8", errors="replace"), tuple(raw)
        text = str(self._tok.decode([token_id]))
        return text, tuple(text.encode("utf-8"))

    def logprob(self, token_id: int, logprob: float, top: list[tuple[int, float]]) -> TokenLogprob:
        alternatives = tuple(TokenLogprob(*self._entry(i, lp)) for i, lp in top)
        return TokenLogprob(*self._entry(token_id, logprob), alternatives)

    def _entry(self, token_id: int, logprob: float) -> tuple[str, float, tuple[int, ...]]:
        text, raw = self.of(token_id)
        return text, logprob, raw
