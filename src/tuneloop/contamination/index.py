"""The contamination index: built from eval items, persisted, versioned, extended in place.

What it holds, per eval item, is one-way only:
- ``exact``: 64-bit BLAKE2b of the normalized text;
- ``minhash``: LSH band keys of a MinHash over word 5-grams, and the item's set of 5-gram
  hashes so that every LSH candidate is verified to the real Jaccard threshold;
- ``ngram``: hashes of the item's word 13-grams (lm-eval style overlap);
- ``canary``: hashes of canary strings found in (or registered for) the item;
- ``semantic`` (optional): a normalized sentence embedding, for paraphrases.

The index is versioned by the eval store's head hash: the contamination certificate of a
dataset names that version, and the gate refuses a dataset certified against an older one.
Adding items computes signatures for the new items only and merges them in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tuneloop.contamination.hashing import Batch, canary_hash, exact_hashes
from tuneloop.minhash import kernels
from tuneloop.minhash.signatures import I64Array, MinHasher, U64Array, word_table

F32Array = npt.NDArray[np.float32]
DEFAULT_CANARY_PATTERNS = (
    r"canary GUID [0-9a-fA-F-]{36}",
    r"TUNELOOP-CANARY-[0-9A-Fa-f]{6,}",
)


@dataclass(frozen=True)
class IndexSettings:
    """How items are hashed and when a training record counts as contaminated."""

    ngram: int = 5
    num_perm: int = 128
    threshold: float = 0.8
    overlap_n: int = 13
    overlap_min_fraction: float = 0.8
    canary_patterns: tuple[str, ...] = DEFAULT_CANARY_PATTERNS
    semantic_threshold: float = 0.9
    seed: int = 1

    def hasher(self) -> MinHasher:
        return MinHasher(
            ngram=self.ngram, num_perm=self.num_perm, threshold=self.threshold, seed=self.seed
        )


@dataclass
class SortedKeys:
    """Values sorted, each with the item it came from: look-ups are binary searches."""

    keys: U64Array = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    items: I64Array = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @classmethod
    def of(cls, keys: U64Array, items: I64Array) -> SortedKeys:
        order = np.argsort(keys)
        return cls(keys[order], items[order])

    def merged(self, other: SortedKeys) -> SortedKeys:
        return SortedKeys.of(
            np.concatenate([self.keys, other.keys]), np.concatenate([self.items, other.items])
        )


@dataclass
class ContaminationIndex:
    """Everything needed to check training text against the eval set, without its text."""

    settings: IndexSettings
    version: str = ""
    item_ids: list[str] = field(default_factory=list)
    exact: SortedKeys = field(default_factory=SortedKeys)
    bands: list[SortedKeys] = field(default_factory=list)
    set_values: U64Array = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    set_offsets: I64Array = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    grams: SortedKeys = field(default_factory=SortedKeys)
    gram_counts: I64Array = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    canaries: dict[int, SortedKeys] = field(default_factory=dict)
    embeddings: F32Array | None = None

    def __len__(self) -> int:
        return len(self.item_ids)

    def extend(
        self,
        item_ids: Sequence[str],
        texts: Sequence[str],
        version: str,
        extra_canaries: Sequence[tuple[int, str]] = (),
        embeddings: F32Array | None = None,
    ) -> None:
        """Add items (hashing only the new ones) and move the index to ``version``.

        ``extra_canaries`` are (position in ``texts``, canary string) registered by hand.
        """
        part = _build_part(self.settings, len(self), texts, extra_canaries)
        self.item_ids.extend(item_ids)
        self.exact = self.exact.merged(part.exact)
        if self.bands:
            self.bands = [old.merged(new) for old, new in zip(self.bands, part.bands, strict=True)]
        else:
            self.bands = part.bands
        self.set_values = np.concatenate([self.set_values, part.set_values])
        shift = self.set_offsets[-1]
        self.set_offsets = np.concatenate([self.set_offsets, part.set_offsets[1:] + shift])
        self.grams = self.grams.merged(part.grams)
        self.gram_counts = np.concatenate([self.gram_counts, part.gram_counts])
        for n, keys in part.canaries.items():
            self.canaries[n] = self.canaries[n].merged(keys) if n in self.canaries else keys
        self.embeddings = _extend_embeddings(self.embeddings, embeddings, len(self))
        self.version = version


def _extend_embeddings(old: F32Array | None, new: F32Array | None, total: int) -> F32Array | None:
    if new is None:
        return None if old is None or old.shape[0] != total else old
    return new if old is None else np.concatenate([old, new])


@dataclass
class _Part:
    exact: SortedKeys
    bands: list[SortedKeys]
    set_values: U64Array
    set_offsets: I64Array
    grams: SortedKeys
    gram_counts: I64Array
    canaries: dict[int, SortedKeys]


def find_canaries(text: str, patterns: Sequence[str]) -> list[str]:
    """Canary strings in an eval item (e.g. BIG-bench's "canary GUID …")."""
    return [m.group(0) for p in patterns for m in re.finditer(p, text)]


def _canary_keys(
    settings: IndexSettings, first: int, texts: Sequence[str], extra: Sequence[tuple[int, str]]
) -> dict[int, SortedKeys]:
    found: dict[int, tuple[list[int], list[int]]] = {}
    in_text = [
        (first + i, c)
        for i, t in enumerate(texts)
        for c in find_canaries(t, settings.canary_patterns)
    ]
    for item, canary in [*in_text, *((first + pos, c) for pos, c in extra)]:
        n, h = canary_hash(canary)
        keys, items = found.setdefault(n, ([], []))
        keys.append(h)
        items.append(item)
    return {
        n: SortedKeys.of(np.array(k, dtype=np.uint64), np.array(i, dtype=np.int64))
        for n, (k, i) in found.items()
    }


def _gram_keys(batch: Batch, n: int, first: int) -> tuple[SortedKeys, I64Array]:
    """Distinct n-gram hashes of each item, and how many each item has."""
    values, offsets = kernels.shingle_sets(batch.buf, batch.offsets, n, word_table())
    docs = batch.doc_of_each(offsets) + first
    return SortedKeys.of(values, docs), np.diff(offsets)


def _build_part(
    settings: IndexSettings,
    first: int,
    texts: Sequence[str],
    extra_canaries: Sequence[tuple[int, str]],
) -> _Part:
    batch = Batch.of(texts)
    items = np.arange(first, first + len(texts), dtype=np.int64)
    hasher = settings.hasher()
    keys = batch.band_keys(hasher)
    sets = hasher.shingle_sets(batch.buf, batch.offsets)
    grams, gram_counts = _gram_keys(batch, settings.overlap_n, first)
    bands = [
        SortedKeys.of(np.ascontiguousarray(keys[:, b]), items.copy()) for b in range(keys.shape[1])
    ]
    return _Part(
        exact=SortedKeys.of(exact_hashes(batch.buf, batch.offsets), items.copy()),
        bands=bands,
        set_values=sets.values,
        set_offsets=sets.offsets,
        grams=grams,
        gram_counts=gram_counts,
        canaries=_canary_keys(settings, first, texts, extra_canaries),
    )


def build_index(
    settings: IndexSettings,
    item_ids: Sequence[str],
    texts: Sequence[str],
    version: str,
    extra_canaries: Sequence[tuple[int, str]] = (),
    embeddings: F32Array | None = None,
) -> ContaminationIndex:
    """A new index over ``texts`` (the eval side calls this; it keeps no text)."""
    index = ContaminationIndex(settings=settings)
    index.extend(item_ids, texts, version, extra_canaries, embeddings)
    return index
