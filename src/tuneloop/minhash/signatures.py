"""From Python strings to MinHash signatures, LSH band keys and exact shingle sets, in batches."""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import numpy.typing as npt

from tuneloop.minhash import kernels
from tuneloop.minhash.lsh import Banding, choose_banding

U64Array = npt.NDArray[np.uint64]
I64Array = npt.NDArray[np.int64]
U32Array = npt.NDArray[np.uint32]
U8Array = npt.NDArray[np.uint8]


@cache
def word_table() -> U8Array:
    """1 for every code point that is a letter, mark or number (a word character), else 0."""
    cats = (unicodedata.category(chr(cp))[0] for cp in range(sys.maxunicode + 1))
    return np.fromiter((c in "LMN" for c in cats), dtype=np.uint8, count=sys.maxunicode + 1)


def encode_for_kernels(text: str) -> bytes:
    """UTF-8 bytes that the kernels tokenize exactly as :func:`~tuneloop.textnorm.normalize`.

    ASCII goes as it is (the kernels fold case and punctuation themselves, which is most of the
    speed); other text gets NFKC and case folding here, the parts numba cannot do.
    """
    if text.isascii():
        return text.encode("ascii")
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return folded.encode("utf-8", "surrogatepass")


def pack_encoded(encoded: Sequence[bytes]) -> tuple[U8Array, I64Array]:
    """Concatenate encoded texts into one buffer with offsets (one crossing into numba)."""
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    joined = b"".join(encoded)
    buf = np.frombuffer(joined, dtype=np.uint8) if joined else np.zeros(1, dtype=np.uint8)
    return buf, offsets


def pack(texts: Sequence[str]) -> tuple[U8Array, I64Array]:
    return pack_encoded([encode_for_kernels(t) for t in texts])


@dataclass(frozen=True)
class ShingleSets:
    """Sorted distinct shingle hashes of a batch of documents, concatenated."""

    values: U64Array
    offsets: I64Array

    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def of(self, d: int) -> U64Array:
        return self.values[self.offsets[d] : self.offsets[d + 1]]

    def sizes(self) -> I64Array:
        return np.diff(self.offsets)


def _permutations(num_perm: int, seed: int) -> tuple[U64Array, U64Array]:
    rng = np.random.default_rng(seed)
    top = np.iinfo(np.uint64).max
    a = rng.integers(1, top, size=num_perm, dtype=np.uint64, endpoint=True) | np.uint64(1)
    b = rng.integers(0, top, size=num_perm, dtype=np.uint64, endpoint=True)
    return a, b


@dataclass(frozen=True)
class MinHasher:
    """MinHash over word n-gram shingles with ``num_perm`` seeded permutations."""

    ngram: int = 5
    num_perm: int = 128
    threshold: float = 0.8
    seed: int = 1
    min_recall: float = 0.97
    banding: Banding = field(init=False)
    _a: U64Array = field(init=False, repr=False)
    _b: U64Array = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.ngram < 1:
            raise ValueError(f"ngram must be ≥ 1, got {self.ngram}")
        if not 1 <= self.num_perm <= 1024:
            raise ValueError(f"num_perm must be in 1..1024, got {self.num_perm}")
        a, b = _permutations(self.num_perm, self.seed)
        object.__setattr__(self, "_a", a)
        object.__setattr__(self, "_b", b)
        banding = choose_banding(self.num_perm, self.threshold, self.min_recall)
        object.__setattr__(self, "banding", banding)

    def signatures(self, buf: U8Array, offsets: I64Array) -> U32Array:
        sig: U32Array = kernels.signatures(buf, offsets, self.ngram, word_table(), self._a, self._b)
        return sig

    def band_keys(self, sig: U32Array) -> U64Array:
        keys: U64Array = kernels.band_keys(sig, self.banding.bands, self.banding.rows)
        return keys

    def shingle_sets(self, buf: U8Array, offsets: I64Array) -> ShingleSets:
        values, out_off = kernels.shingle_sets(buf, offsets, self.ngram, word_table())
        return ShingleSets(values, out_off)

    def sets_of(self, texts: Sequence[str]) -> ShingleSets:
        return self.shingle_sets(*pack(texts))

    def params(self) -> dict[str, object]:
        return {
            "ngram": self.ngram,
            "num_perm": self.num_perm,
            "threshold": self.threshold,
            "seed": self.seed,
            "bands": self.banding.bands,
            "rows": self.banding.rows,
            "hash": "fnv1a64 words, rolled polynomial shingles, multiply-add-shift 32-bit",
        }
