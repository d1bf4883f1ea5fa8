"""The one-way values the index is made of, computed the same way for eval and training text."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tuneloop.minhash import kernels
from tuneloop.minhash.signatures import (
    I64Array,
    MinHasher,
    U8Array,
    U64Array,
    pack,
    word_table,
)
from tuneloop.textnorm import normalize


def exact_hashes(buf: U8Array, offsets: I64Array) -> U64Array:
    """64-bit hash of each normalized text: equal for texts that differ in case/punctuation."""
    if offsets.shape[0] == 2:
        return np.array([kernels.text_hash(buf, 0, offsets[1], word_table())], dtype=np.uint64)
    values: U64Array = kernels.text_hashes(buf, offsets, word_table())
    return values


def canary_hash(canary: str) -> tuple[int, int]:
    """(word count, hash) of a canary string: the hash of its one n-gram, n = its word count."""
    n = len(normalize(canary).split())
    if n == 0:
        raise ValueError(f"canary {canary!r} has no words")
    values, _ = kernels.shingle_sets(*pack([canary]), n, word_table())
    return n, int(values[0])


@dataclass(frozen=True)
class Batch:
    """A batch of texts, packed once and hashed every way the index needs."""

    texts: Sequence[str]
    buf: U8Array
    offsets: I64Array

    @classmethod
    def of(cls, texts: Sequence[str]) -> Batch:
        buf, offsets = pack(texts)
        return cls(texts, buf, offsets)

    def __len__(self) -> int:
        return len(self.texts)

    def band_keys(self, hasher: MinHasher) -> U64Array:
        return hasher.band_keys(hasher.signatures(self.buf, self.offsets))

    def doc_of_each(self, offsets: I64Array) -> I64Array:
        """For concatenated per-document values with ``offsets``: the document of each value."""
        return np.repeat(np.arange(len(self), dtype=np.int64), np.diff(offsets))


# Reformatting changes numbers more than words: "1,000" / "1000", "1/2" / "12" once punctuation
# is stripped, "60-mile" / "60mile". The containment grams therefore see every run of numbers
# (with whatever punctuation and spaces lie between them) as one token, and a number is split
# from the letters after it (not before: "word4956", "iPhone12" stay words); apostrophes
# inside words are dropped ("Janet's" / "Janets").
_NUMBER_RUN = re.compile(r"(?<!\w)\d+(?:[\W_]*\d+)*")
_DIGIT_LETTER = re.compile(r"(?<=\d)(?=[^\W\d_])")
_APOSTROPHE = re.compile(r"(?<=[^\W\d_])['’`](?=[^\W\d_])")


def containment_text(text: str) -> str:
    """``text`` as the containment grams see it: robust to number formatting and apostrophes.

    Only the containment check uses this; exact hashes and MinHash keep the shared
    normalization, so indexes and dedup stay comparable with :mod:`tuneloop.textnorm`.
    """
    text = _APOSTROPHE.sub("", _DIGIT_LETTER.sub(" ", text))
    return _NUMBER_RUN.sub("0", text)
