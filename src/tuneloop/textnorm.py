"""The one text normalization used for every hash, signature and n-gram in tuneloop.

Definition (applied in this order):
1. Unicode NFKC, so compatibility forms (full-width letters, ligatures, superscripts) compare equal.
2. Case folding (``str.casefold``), stronger than ``lower`` (German ß → ss).
3. Every character that is not a letter (L*), a mark (M*) or a number (N*) — punctuation,
   symbols, whitespace, control characters — becomes a word boundary.
4. Words are the maximal runs left; the normalized text is the words joined by one space.

So "Hello,   WORLD!" and "hello world" normalize to the same text, and two records that
differ only in punctuation, spacing or case hash to the same value. The fast kernels in
:mod:`tuneloop.minhash` tokenise ASCII text themselves with exactly this rule (a property test
checks the two agree), and get pre-normalized text for everything else.
"""

from __future__ import annotations

import unicodedata

_WORD_CATEGORIES = ("L", "M", "N")
_ASCII_TABLE = {cp: ord(" ") for cp in range(128) if not chr(cp).isalnum()}


def is_word_char(c: str) -> bool:
    """A letter, mark or number: the characters words are made of."""
    return unicodedata.category(c)[0] in _WORD_CATEGORIES


class _Boundaries(dict[int, int]):
    """``str.translate`` table: non-word code points → space, filled in as characters are seen.

    A full table of all 1.1M code points takes ~0.5 s to build; most texts use a few hundred
    distinct characters, so each is classified once, on first sight, and cached (word characters
    map to themselves).
    """

    def __missing__(self, cp: int) -> int:
        value = cp if is_word_char(chr(cp)) else ord(" ")
        self[cp] = value
        return value


_BOUNDARIES = _Boundaries()


def normalize(text: str) -> str:
    """Return the normalized form of ``text`` (see the module docstring for the definition)."""
    if text.isascii():
        return " ".join(text.lower().translate(_ASCII_TABLE).split())
    folded = unicodedata.normalize("NFKC", text).casefold()
    # casefold can produce characters that are not NFKC-normal again (rare); normalize twice.
    folded = unicodedata.normalize("NFKC", folded)
    return " ".join(folded.translate(_BOUNDARIES).split())


def words(text: str) -> list[str]:
    """The normalized words of ``text``."""
    return normalize(text).split()
