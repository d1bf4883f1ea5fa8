"""From Python strings to MinHash signatures, LSH band keys and exact shingle sets, in batches."""

from __future__ import annotations

import os
import sys
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tuneloop.minhash import kernels
from tuneloop.minhash.lsh import Banding, choose_banding
from tuneloop.textnorm import is_word_char

U64Array = npt.NDArray[np.uint64]
I64Array = npt.NDArray[np.int64]
U32Array = npt.NDArray[np.uint32]
U8Array = npt.NDArray[np.uint8]


def _cache_file(name: str) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tuneloop"
    return root / f"{name}-unicode-{unicodedata.unidata_version}"


def _cached_bytes(name: str, build: Callable[[], bytes]) -> bytes:
    """Tables derived from Python's Unicode database, computed once per Unicode version."""
    path = _cache_file(name)
    try:
        return path.read_bytes()
    except OSError:
        data = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError:
        pass  # a read-only home: compute again next time
    return data


_HANGUL_JAMO = ((0x1100, 0x11FF), (0xA960, 0xA97F), (0xD7B0, 0xD7FF))
WORD, SLOW = 1, 2


def _simple(cp: int) -> bool:
    """True if the kernels may read this code point raw: normalizing can't change its words.

    That holds for a boundary character whose normalized form has no word character, and for a
    word character that NFKC and case folding leave alone and that never composes with its
    neighbours (no marks, no conjoining jamo). Characters outside the BMP are left to Python.
    """
    if cp >= 0x10000 or 0xD800 <= cp <= 0xDFFF:
        return False
    c = chr(cp)
    if unicodedata.combining(c) or any(lo <= cp <= hi for lo, hi in _HANGUL_JAMO):
        return False
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", c).casefold())
    if not is_word_char(c):
        return not any(is_word_char(f) or unicodedata.combining(f) for f in folded)
    return folded == c and unicodedata.category(c)[0] != "M"


def _build_char_table() -> bytes:
    table = np.zeros(sys.maxunicode + 1, dtype=np.uint8)
    for cp in range(sys.maxunicode + 1):
        c = chr(cp)
        word = is_word_char(c)
        if cp < 128:
            table[cp] = WORD if c.isalnum() else 0
            continue
        table[cp] = WORD if word else 0
        if not _simple(cp):
            table[cp] |= SLOW
    return table.tobytes()


@cache
def char_table() -> U8Array:
    """Per code point: bit 1 = word character (letter, mark, number); bit 2 = needs Python.

    Computed once per Unicode version and cached on disk (about 1 MB).
    """
    data = _cached_bytes("char-table", _build_char_table)
    table = np.frombuffer(data, dtype=np.uint8)
    if table.shape[0] != sys.maxunicode + 1:
        table = np.frombuffer(_build_char_table(), dtype=np.uint8)
    return table


def word_table() -> U8Array:
    """The table the kernels tokenize with (its bit 1 says which characters are word characters)."""
    return char_table()


def _normalized_bytes(text: str) -> bytes:
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return folded.encode("utf-8", "surrogatepass")


def encode_all(texts: Sequence[str]) -> list[bytes]:
    """UTF-8 bytes the kernels tokenize exactly as :func:`~tuneloop.textnorm.normalize`.

    Text goes as it is when every character is ASCII, punctuation, or a letter that
    normalization leaves alone (’ “ — é ñ 한…): the kernels fold case and punctuation themselves,
    which is most of the speed. A kernel pass finds the rest, which get NFKC and case folding
    here, the part numba cannot do.
    """
    encoded = [t.encode("utf-8", "surrogatepass") for t in texts]
    candidates = [k for k, t in enumerate(texts) if not t.isascii()]
    if candidates:
        buf, offsets = pack_encoded([encoded[k] for k in candidates])
        slow = kernels.needs_python(buf, offsets, char_table())
        for k in np.flatnonzero(slow):
            encoded[candidates[k]] = _normalized_bytes(texts[candidates[k]])
    return encoded


def encode_for_kernels(text: str) -> bytes:
    return encode_all([text])[0]


def pack_encoded(encoded: Sequence[bytes]) -> tuple[U8Array, I64Array]:
    """Concatenate encoded texts into one buffer with offsets (one crossing into numba)."""
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    joined = b"".join(encoded)
    buf = np.frombuffer(joined, dtype=np.uint8) if joined else np.zeros(1, dtype=np.uint8)
    return buf, offsets


def pack(texts: Sequence[str]) -> tuple[U8Array, I64Array]:
    return pack_encoded(encode_all(texts))


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
    min_recall: float = 0.99
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
