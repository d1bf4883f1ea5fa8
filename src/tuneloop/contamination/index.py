"""The contamination index: built from eval items, persisted, versioned, extended in place.

What it holds, per eval item, is one-way only:
- ``exact``: 64-bit BLAKE2b of the normalized text;
- ``minhash``: LSH band keys of a MinHash over word 5-grams, and the item's set of 5-gram
  hashes so that every LSH candidate is verified to the real Jaccard threshold;
- ``ngram``: hashes of the item's word 13-grams (lm-eval style overlap);
- ``contains``: hashes of the word 8-grams of each *unit* of the item — its prompt and its
  reference answer (or the whole text when it has no fields) — so that a record holding one
  part alone (a question pasted without its answer) is found; grams shared by more than
  ``common_items`` eval items are dropped (templates are no evidence of a leak);
- ``canary``: hashes of canary strings found in (or registered for) the item;
- ``semantic`` (optional): a normalized sentence embedding of the item's prompt (or of its text
  when it has none), for paraphrases, and each item's suite: the check's threshold is calibrated
  per suite (see :mod:`tuneloop.contamination.calibration`).

The index is versioned by the eval store's head hash: the contamination certificate of a
dataset names that version, and the gate refuses a dataset certified against an older one.
Adding items computes signatures for the new items only and merges them in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tuneloop.config import DEFAULT_CANARY_PATTERNS as DEFAULT_CANARY_PATTERNS
from tuneloop.config import IndexSettings as IndexSettings
from tuneloop.contamination import kernels as ck
from tuneloop.contamination.calibration import (
    SemanticRule,
    SuiteCalibration,
    calibrate_all,
    item_cutoffs,
    update_neighbours,
)
from tuneloop.contamination.fields import FIELDS, ItemFields
from tuneloop.contamination.hashing import Batch, canary_hash, containment_text, exact_hashes
from tuneloop.minhash import kernels
from tuneloop.minhash.signatures import I64Array, MinHasher, U64Array, pack, word_table

F32Array = npt.NDArray[np.float32]
DEFAULT_SUITE = "default"  # the suite of items added without one (an eval file checked alone)


def minhasher(settings: IndexSettings) -> MinHasher:
    return MinHasher(
        ngram=settings.ngram,
        num_perm=settings.num_perm,
        threshold=settings.threshold,
        seed=settings.seed,
    )


def semantic_rule(settings: IndexSettings) -> SemanticRule:
    return SemanticRule(
        floor=settings.semantic_threshold,
        quantile=settings.semantic_quantile,
        margin=settings.semantic_margin,
        ceiling=settings.semantic_ceiling,
        copy=settings.semantic_copy,
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
    units: Units = field(default_factory=lambda: Units())
    suite_names: list[str] = field(default_factory=list)
    item_suite: I64Array = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    neighbours: F32Array | None = None  # each item's nearest-neighbour cosine in its suite
    calibration: dict[str, SuiteCalibration] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.item_ids)

    def semantic_cutoffs(self) -> F32Array | None:
        """Each item's semantic threshold (+inf where its suite is too templated), or None
        when the index holds no embeddings."""
        if self.embeddings is None:
            return None
        return item_cutoffs(self.item_suite, self.suite_names, self.calibration)

    def extend(
        self,
        item_ids: Sequence[str],
        texts: Sequence[str],
        version: str,
        extra_canaries: Sequence[tuple[int, str]] = (),
        embeddings: F32Array | None = None,
        fields: Sequence[ItemFields] | None = None,
        suites: Sequence[str] | None = None,
    ) -> None:
        """Add items (hashing only the new ones) and move the index to ``version``.

        ``extra_canaries`` are (position in ``texts``, canary string) registered by hand;
        ``fields`` the prompt and answer of each item, indexed as units of their own;
        ``suites`` each item's suite (default: all in one suite, ``DEFAULT_SUITE``), whose
        semantic threshold is recalibrated when it grows.
        """
        first = len(self)
        part = _build_part(self.settings, len(self), texts, extra_canaries)
        self.units.extend(self.settings, len(self), texts, fields)
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
        self._extend_suites(suites or [DEFAULT_SUITE] * len(texts))
        self.embeddings = _extend_embeddings(self.embeddings, embeddings, len(self))
        self._recalibrate(first)
        self.version = version

    def _extend_suites(self, suites: Sequence[str]) -> None:
        numbers = {name: k for k, name in enumerate(self.suite_names)}
        for name in suites:
            if name not in numbers:
                numbers[name] = len(self.suite_names)
                self.suite_names.append(name)
        new = np.array([numbers[name] for name in suites], dtype=np.int64)
        self.item_suite = np.concatenate([self.item_suite, new])

    def _recalibrate(self, first: int) -> None:
        """Nearest neighbours of the new items (and of their suites' old ones) and the
        thresholds of every suite; nothing without embeddings."""
        if self.embeddings is None:
            self.neighbours, self.calibration = None, {}
            return
        start = first if self.neighbours is not None else 0
        rule = semantic_rule(self.settings)
        self.neighbours = update_neighbours(
            self.embeddings, self.item_suite, self.neighbours, start, rule.copy
        )
        self.calibration = calibrate_all(self.neighbours, self.item_suite, self.suite_names, rule)


@dataclass
class Units:
    """The containment index: gram hash -> unit, and each unit's item, field and grams in order.

    A unit is an item's prompt, its answer, or (for an item without fields) its whole text.
    Grams found in more than ``common_items`` items are the template: they go to ``common``,
    are never looked up, and the words only they cover are not counted. Kept there so that
    growing the index in steps gives the same index as one build. The rest is derived by
    :meth:`recount`: each word's "novel" flag (a unit with fewer than ``min_novel_words`` novel
    words is too short or too templated to be evidence on its own: the check skips it).
    """

    grams: SortedKeys = field(default_factory=SortedKeys)
    common: U64Array = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    items: I64Array = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    fields: I64Array = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    seq: U64Array = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    seq_off: I64Array = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    words: I64Array = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    word_off: I64Array = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    novel: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    distinct: I64Array = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    item_first_unit: I64Array = field(default_factory=lambda: np.zeros(1, dtype=np.int64))

    def extend(
        self,
        settings: IndexSettings,
        first: int,
        texts: Sequence[str],
        fields: Sequence[ItemFields] | None,
    ) -> None:
        """Add the units of items ``first, first + 1, ...``; recount what became common."""
        unit_texts, items, kinds = _units_of(texts, fields, first)
        buf, offsets = pack([containment_text(t) for t in unit_texts])
        seq, seq_off, words = ck.unit_grams(buf, offsets, settings.contain_n, word_table())
        base = self.items.shape[0]
        self.items = np.concatenate([self.items, np.array(items, dtype=np.int64)])
        self.fields = np.concatenate([self.fields, np.array(kinds, dtype=np.int64)])
        self.seq = np.concatenate([self.seq, seq])
        self.seq_off = np.concatenate([self.seq_off, seq_off[1:] + self.seq_off[-1]])
        self.words = np.concatenate([self.words, words])
        owner = np.repeat(np.arange(base, self.items.shape[0], dtype=np.int64), np.diff(seq_off))
        pairs = np.unique(np.stack([seq, owner.astype(np.uint64)]), axis=1)
        keys = np.concatenate([self.grams.keys, pairs[0]])
        units = np.concatenate([self.grams.items, pairs[1].astype(np.int64)])
        keep = ~_member(keys, self.common)
        keys, units = keys[keep], units[keep]
        common = _common_keys(keys, self.items[units], settings.common_items)
        self.common = np.union1d(self.common, common)
        keep = ~_member(keys, common)
        self.grams = SortedKeys.of(keys[keep], units[keep])
        self.recount(settings, first + len(texts))

    def recount(self, settings: IndexSettings, n_items: int) -> None:
        """Derive the novel words, the distinct grams per unit and each item's first unit."""
        self.word_off = np.concatenate([[0], np.cumsum(self.words)]).astype(np.int64)
        self.novel = ck.novel_words(
            self.seq, self.seq_off, self.words, self.word_off, settings.contain_n, self.common
        )
        self.distinct = np.bincount(self.grams.items, minlength=self.items.shape[0])
        items = np.arange(n_items + 1, dtype=np.int64)
        self.item_first_unit = np.searchsorted(self.items, items).astype(np.int64)

    def kernel_args(self) -> tuple[npt.NDArray[Any], ...]:
        """The arrays :func:`~tuneloop.contamination.kernels.contains_one` reads, in order."""
        return (
            self.items, self.fields, self.seq, self.seq_off, self.words, self.word_off,
            self.novel, self.distinct, self.item_first_unit,
        )  # fmt: skip


def _units_of(
    texts: Sequence[str], fields: Sequence[ItemFields] | None, first: int
) -> tuple[list[str], list[int], list[int]]:
    """(unit texts, their items, their field numbers) in item order."""
    unit_texts: list[str] = []
    items: list[int] = []
    kinds: list[int] = []
    for k, text in enumerate(texts):
        f = fields[k] if fields is not None else ItemFields()
        parts = [(FIELDS.index("prompt"), f.prompt), (FIELDS.index("answer"), f.answer)]
        present = [(kind, t) for kind, t in parts if t.strip()]
        for kind, t in present or [(FIELDS.index("item"), text)]:
            unit_texts.append(t)
            items.append(first + k)
            kinds.append(kind)
    return unit_texts, items, kinds


def _member(keys: U64Array, sorted_set: U64Array) -> npt.NDArray[np.bool_]:
    """Which of ``keys`` are in ``sorted_set`` (sorted, distinct)."""
    if sorted_set.shape[0] == 0:
        return np.zeros(keys.shape[0], dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, keys), sorted_set.shape[0] - 1)
    found: npt.NDArray[np.bool_] = sorted_set[pos] == keys
    return found


def _common_keys(keys: U64Array, items: I64Array, limit: int) -> U64Array:
    """Keys that occur in more than ``limit`` distinct items (NeMo Curator's template rule)."""
    if keys.shape[0] == 0:
        return np.zeros(0, dtype=np.uint64)
    order = np.lexsort((items, keys))
    k, it = keys[order], items[order]
    first = np.ones(k.shape[0], dtype=bool)
    first[1:] = (k[1:] != k[:-1]) | (it[1:] != it[:-1])
    distinct, per_key = np.unique(k[first], return_counts=True)
    common: U64Array = distinct[per_key > limit]
    return common


def _extend_embeddings(old: F32Array | None, new: F32Array | None, total: int) -> F32Array | None:
    """The embeddings of all ``total`` items, or None unless every item has one."""
    if new is None:
        return None if old is None or old.shape[0] != total else old
    whole = new if old is None else np.concatenate([old, new])
    return whole if whole.shape[0] == total else None


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
    hasher = minhasher(settings)
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
    fields: Sequence[ItemFields] | None = None,
    suites: Sequence[str] | None = None,
) -> ContaminationIndex:
    """A new index over ``texts`` (the eval side calls this; it keeps no text)."""
    index = ContaminationIndex(settings=settings)
    index.extend(item_ids, texts, version, extra_canaries, embeddings, fields, suites)
    return index
