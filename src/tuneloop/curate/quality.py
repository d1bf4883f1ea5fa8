"""QualityBlock: Gopher-style heuristics that catch junk a model should not learn from.

Each rule measures one number and compares it to a threshold; the first rule violated drops the
record with its own reason and ``{"value", "threshold"}`` details, so the rejects file shows how
far off the record was and which knob would keep it.

The rules are tuned for chat records, not web pages, and measured on clean public sets (GSM8K,
MMLU, BBH, Alpaca, Self-Instruct, T0/P3: ``bench/quality_bench.py``), where every drop is a false
positive:

- Repetition is judged per message. An answer that restates its question ("If Washington has
  140 goats, ...") or quotes the text it was asked to edit is not a loop; a reply that says the
  same thing over and over is. A record is dropped when one of its messages is mostly copies of
  its own earlier word 4-grams (Gopher's "duplicate n-gram character fraction", counting each
  word once), is one phrase said two or more times, or repeats one line over and over.
- Gopher's top-n-gram rule (the most frequent n-gram's share of the characters) is kept but off
  by default: on short texts one repeated phrase is a large share ("digits of pi" three times in
  a 40-word solution), and it dropped 3.7% of GSM8K and 5% of MMLU at 0.2, while loops are
  caught by the duplicate-4-gram share.
- Letters are counted over the whole record, with arithmetic ("(3 * -3 + 6) - 2 =", "2x1=2")
  and table rules ("|") counted as text: a number dump is junk, a sum or a grid is not.

Production chats are short ("What is 2+2?" / "4"), where ratios are noise: the repetition and
non-text rules only look at texts with at least ``min_chars_for_ratios`` non-space characters,
and the long-word rule only at words of at least ``long_word_min_chars`` characters.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

from tuneloop.config import QualityConfig
from tuneloop.curate.base import Drop, MapBlock
from tuneloop.records import Record
from tuneloop.textnorm import words as norm_words

# Scripts written without spaces: each character counts as a word, or every Chinese or Japanese
# record would be "too_short". (Korean separates words with spaces.)
_KANA_AND_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_UNSPACED = re.compile(f"[{_KANA_AND_CJK}\U00020000-\U0002fa1f]")
# Two or more numbers joined by operators: "(-1 + 2) * 5 =", "48/2=24", "2x1=2", "3^2".
_NUMBER = r"\(*[-+−]?\(*\d[\d.,]*\)*"
_ARITHMETIC = re.compile(rf"{_NUMBER}(?:\s*[-+−*/×÷^=<>x]\s*{_NUMBER})+\s*=?")
_TABLE_RULES = "|"


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


def repeated_ngram_frac(text: str, n: int = 4) -> float:
    """Share of word characters in later occurrences of a word n-gram seen earlier in ``text``.

    Gopher's duplicate n-gram fraction, with each word counted once however many repeats cover
    it: 0 for text that never repeats itself, (k-1)/k for one phrase said k times.
    """
    return _repeated_share(norm_words(text), n)


def echo_count(text: str) -> int:
    """How many times ``text`` says one phrase over (1 when it is not one phrase repeated).

    "Thanks, I checked your order. Thanks, I checked your order!" says it twice: a paste or a
    loop whose duplicate-n-gram share, exactly one half, sits below any useful threshold.
    """
    return _echoes(norm_words(text))


def _repeated_share(toks: list[str], n: int) -> float:
    total = sum(len(t) for t in toks)
    seen: set[tuple[str, ...]] = set()
    covered = [False] * len(toks)
    for i in range(len(toks) - n + 1):
        gram = tuple(toks[i : i + n])
        if gram in seen:
            covered[i : i + n] = [True] * n
        seen.add(gram)
    return sum(len(t) for t, c in zip(toks, covered, strict=True) if c) / total if total else 0.0


def _echoes(toks: list[str]) -> int:
    size = len(toks)
    for period in range(1, size // 2 + 1):
        if size % period == 0 and toks[period:] == toks[:-period]:
            return size // period
    return 1


def alpha_frac(text: str) -> float:
    """Share of non-space characters that are letters (low for dumps, tables, hex)."""
    total = non_space_chars(text)
    return sum(c.isalpha() for c in text) / total if total else 0.0


def text_frac(text: str) -> float:
    """Share of non-space characters that are letters or arithmetic, table rules left out.

    A BIG-Bench sum "((3 * -3 * 6 + -5) - (-2 + -7)) =" or a sudoku grid is content; a run of
    card-like digit groups or a hex dump is not.
    """
    math = sum(non_space_chars(m.group()) for m in _ARITHMETIC.finditer(text))
    rest = _ARITHMETIC.sub(" ", text)
    letters = sum(c.isalpha() for c in rest)
    total = non_space_chars(rest) - rest.count(_TABLE_RULES) + math
    return (letters + math) / total if total > 0 else 1.0


def longest_word(text: str) -> str:
    """The longest whitespace-separated token ("" for blank text)."""
    return max(text.split(), key=len, default="")


def parts(record: Record) -> list[str]:
    """What one speaker wrote at a time: the messages, or prompt and completion, or the text."""
    if record.shape == "chat":
        return [m.content for m in record.messages]
    if record.shape == "completion":
        return [record.prompt or "", record.completion or ""]
    return [record.text or ""]


class QualityBlock(QualityConfig, MapBlock):
    """Drop records that are too short, too long, repetitive, non-text or garbage.

    Its fields are the ``[curate.quality]`` settings, declared once in
    :class:`tuneloop.config.QualityConfig` with their bounds."""

    name: ClassVar[str] = "quality"

    def params(self) -> dict[str, Any]:
        return self.model_dump()

    def process(self, record: Record) -> Record | Drop:
        text = record.content_text
        for check in self._record_checks():
            verdict = check(text)
            if verdict is not None:
                return verdict
        for part in parts(record):
            verdict = self._repetition(part)
            if verdict is not None:
                return verdict
        return record

    def _record_checks(self) -> list[Callable[[str], Drop | None]]:
        """The rules on the whole record, cheapest first; the first violated names the drop."""
        return [self._length, self._non_text, self._long_word]

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
        value, limit = text_frac(text), self.min_alpha_frac
        return _drop("non_text", value, limit) if value < limit else None

    def _long_word(self, text: str) -> Drop | None:
        word = longest_word(text)
        if len(word) < self.long_word_min_chars:
            return None
        value = len(word) / non_space_chars(text)
        limit = self.max_longest_word_frac
        return _drop("long_word", value, limit) if value > limit else None

    def _repetition(self, part: str) -> Drop | None:
        """One message (or prompt, or completion) that repeats itself."""
        if non_space_chars(part) < self.min_chars_for_ratios:
            return None
        lines = dup_line_frac(part)
        if lines > self.max_dup_line_frac:
            return _drop("repeated_lines", lines, self.max_dup_line_frac)
        toks = norm_words(part)
        times = _echoes(toks)
        if times >= 2:
            return _drop("repeated_text", times, 2)
        grams = _repeated_share(toks, self.repeated_ngram_n)
        if grams > self.max_repeated_ngram_frac:
            return _drop("repeated_ngrams", grams, self.max_repeated_ngram_frac)
        if self.max_top_ngram_frac >= 1.0:  # off
            return None
        top, limit = top_ngram_frac(part), self.max_top_ngram_frac
        return _drop("top_ngram", top, limit) if top > limit else None


def _drop(reason: str, value: float, threshold: float) -> Drop:
    """A drop whose details say what was measured and what the limit was."""
    return Drop(reason, {"value": round(value, 4), "threshold": threshold})
