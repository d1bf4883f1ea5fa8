"""QualityBlock: Gopher-style heuristics that catch junk a model should not learn from.

Each rule measures one number on the record's ``content_text`` and compares it to a threshold;
the first rule violated drops the record with its own reason and ``{"value", "threshold"}``
details, so the rejects file shows how far off the record was and which knob would keep it.

Production chats are short ("What is 2+2?" / "4"), where ratios are noise: the repetition and
non-text rules only look at texts with at least ``min_chars_for_ratios`` non-space characters,
and the long-word rule only at words of at least ``long_word_min_chars`` characters.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from tuneloop.curate.base import Drop, MapBlock
from tuneloop.errors import ConfigError
from tuneloop.records import Record
from tuneloop.textnorm import words as norm_words

# Scripts written without spaces: each character counts as a word, or every Chinese or Japanese
# record would be "too_short". (Korean separates words with spaces.)
_KANA_AND_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_UNSPACED = re.compile(f"[{_KANA_AND_CJK}\U00020000-\U0002fa1f]")


def count_words(text: str) -> int:
    """Whitespace-separated words, with each CJK ideograph or kana counted as one word."""
    return sum(max(1, len(_UNSPACED.findall(token))) for token in text.split())


def non_space_chars(text: str) -> int:
    """Characters that are not whitespace (the denominator of the character ratios)."""
    return sum(not c.isspace() for c in text)


def dup_line_frac(text: str) -> float:
    """Share of non-blank characters covered by the repeated line that covers the most."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    total = sum(len(line) for line in lines)
    repeated = [n * len(line) for line, n in Counter(lines).items() if n > 1]
    return max(repeated, default=0) / total if total else 0.0


def top_ngram_frac(text: str, n: int = 3) -> float:
    """Share of word characters covered by the most covering repeated word n-gram (capped at 1)."""
    toks = norm_words(text)
    total = sum(len(t) for t in toks)
    grams = Counter(zip(*(toks[i:] for i in range(n)), strict=False))
    repeated = [c * sum(len(t) for t in gram) for gram, c in grams.items() if c > 1]
    return min(1.0, max(repeated, default=0) / total) if total else 0.0


def alpha_frac(text: str) -> float:
    """Share of non-space characters that are letters (low for dumps, tables, hex)."""
    total = non_space_chars(text)
    return sum(c.isalpha() for c in text) / total if total else 0.0


def longest_word(text: str) -> str:
    """The longest whitespace-separated token ("" for blank text)."""
    return max(text.split(), key=len, default="")


@dataclass(frozen=True)
class QualityBlock(MapBlock):
    """Drop records that are too short, too long, repetitive, non-text or garbage."""

    name: ClassVar[str] = "quality"
    min_words: int = 3
    max_words: int = 100_000
    max_dup_line_frac: float = 0.3
    max_top_ngram_frac: float = 0.2
    min_alpha_frac: float = 0.3
    max_longest_word_frac: float = 0.5
    long_word_min_chars: int = 32
    min_chars_for_ratios: int = 20

    def __post_init__(self) -> None:
        bad = [
            f"{k}={v!r}"
            for k, v in asdict(self).items()
            if k.endswith("_frac") and not 0.0 <= v <= 1.0
        ]
        if self.min_words < 0 or self.max_words < self.min_words:
            bad.append(f"min_words={self.min_words!r} max_words={self.max_words!r}")
        if bad:
            raise ConfigError(f"quality: bad settings {', '.join(bad)}; fractions lie in [0, 1]")

    def params(self) -> dict[str, Any]:
        return asdict(self)

    def process(self, record: Record) -> Record | Drop:
        text = record.content_text
        for check in self._checks():
            verdict = check(text)
            if verdict is not None:
                return verdict
        return record

    def _checks(self) -> list[Callable[[str], Drop | None]]:
        """The rules, cheapest first; the first violated one names the drop."""
        return [self._length, self._non_text, self._long_word, self._repetition]

    def _length(self, text: str) -> Drop | None:
        n = count_words(text)
        if n < self.min_words:
            return _drop("too_short", n, self.min_words)
        if n > self.max_words:
            return _drop("too_long", n, self.max_words)
        return None

    def _non_text(self, text: str) -> Drop | None:
        if non_space_chars(text) < self.min_chars_for_ratios:
            return None
        value, limit = alpha_frac(text), self.min_alpha_frac
        return _drop("non_text", value, limit) if value < limit else None

    def _long_word(self, text: str) -> Drop | None:
        word = longest_word(text)
        if len(word) < self.long_word_min_chars:
            return None
        value = len(word) / non_space_chars(text)
        limit = self.max_longest_word_frac
        return _drop("long_word", value, limit) if value > limit else None

    def _repetition(self, text: str) -> Drop | None:
        if non_space_chars(text) < self.min_chars_for_ratios:
            return None
        lines = dup_line_frac(text)
        if lines > self.max_dup_line_frac:
            return _drop("repeated_lines", lines, self.max_dup_line_frac)
        grams = top_ngram_frac(text)
        if grams > self.max_top_ngram_frac:
            return _drop("repeated_ngrams", grams, self.max_top_ngram_frac)
        return None


def _drop(reason: str, value: float, threshold: float) -> Drop:
    """A drop whose details say what was measured and what the limit was."""
    return Drop(reason, {"value": round(value, 4), "threshold": threshold})
