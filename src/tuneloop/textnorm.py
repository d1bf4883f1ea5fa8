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

import sys
import unicodedata
from functools import cache

_WORD_CATEGORIES = ("L", "M", "N")
_ASCII_TABLE = {cp: ord(" ") for cp in range(128) if not chr(cp).isalnum()}


def is_word_char(c: str) -> bool:
    """A letter, mark or number: the characters words are made of."""
    return unicodedata.category(c)[0] in _WORD_CATEGORIES


@cache
def _boundary_table() -> dict[int, int]:
    """Map every non-word code point to a space (built once, ~1 MB, used by ``str.translate``)."""
    space = ord(" ")
    return {
        cp: space for cp in range(sys.maxunicode + 1) if not is_word_char(chr(cp)) and cp != space
    }


def normalize(text: str) -> str:
    """Return the normalized form of ``text`` (see the module docstring for the definition)."""
    if text.isascii():
        return " ".join(text.lower().translate(_ASCII_TABLE).split())
    folded = unicodedata.normalize("NFKC", text).casefold()
    # casefold can produce characters that are not NFKC-normal again (rare); normalize twice.
    folded = unicodedata.normalize("NFKC", folded)
    return " ".join(folded.translate(_boundary_table()).split())


def words(text: str) -> list[str]:
    """The normalized words of ``text``."""
    return normalize(text).split()
