"""Checking training text against the contamination index, one record or a whole batch.

Methods, strongest evidence first: ``exact`` (same normalized text), ``canary`` (a canary
string of an eval item appears), ``minhash`` (LSH candidate whose exact 5-gram Jaccard is at or
above the threshold), ``ngram`` (at least ``overlap_min_fraction`` of an eval item's 13-grams
appear in the record: catches an eval item pasted inside a longer text), ``contains`` (the
record holds at least ``contain_min_fraction`` of the distinctive 8-grams of an item's prompt,
its reference answer, or the whole item: catches a question pasted alone, without its answer,
and survives number formatting; the match names the ``field``), ``span`` (the record quotes
one contiguous stretch of a unit, at least ``span_words`` words and ``span_min_fraction`` of
it: the question of a ``text`` item that also holds its answer, or a multiple-choice question
pasted without its choices) and ``semantic`` (embedding
cosine at or above the threshold calibrated for the item's suite: paraphrases; items of a suite
too templated for it are not compared, and where that is every suite, nothing is embedded).

A chat record is checked whole and, for the checks whose score the rest of the record dilutes
(``exact``, ``minhash``, ``semantic``), each of its user turns on its own. Containment and
``span`` read the whole record: the share of an item found in it does not fall when the record
says more. A user turn embedded alone is compared like for like with the items' prompts, which
catches a reworded question before a long reply (GSM8K: 85.7% -> 98.3%); it is compared only with
suites of at least ``turn_min_items`` items, since a small suite's threshold rests on its few
closest pairs and a short request of the same kind passes it (the 600-record demo, whose suites
hold 30-60 items: 14 flags instead of 3 when every suite was compared).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from tuneloop.contamination import kernels as ck
from tuneloop.contamination.fields import FIELDS, user_turns_of_obj
from tuneloop.contamination.hashing import Batch, containment_text, exact_hashes
from tuneloop.contamination.index import ContaminationIndex, F32Array, minhasher
from tuneloop.minhash import kernels as mk
from tuneloop.minhash.signatures import word_table

if TYPE_CHECKING:
    from tuneloop.records import Record

METHODS = ("exact", "canary", "minhash", "ngram", "contains", "span", "semantic")


@dataclass(frozen=True, slots=True)
class Match:
    """Evidence that a training text overlaps an eval item.

    ``field`` says which part of the item was found (``item``, ``prompt`` or ``answer``) for
    the ``contains`` method, where ``score`` is the containment; it is empty otherwise.
    """

    eval_id: str
    method: str
    score: float
    field: str = ""

    def evidence(self) -> dict[str, object]:
        """What a rejects row records: the eval id, method, score and (when known) field."""
        row: dict[str, object] = {"eval_id": self.eval_id, "method": self.method}
        row["score"] = self.score
        if self.field:
            row["field"] = self.field
        return row


class Embedder(Protocol):
    """Turns texts into L2-normalized vectors (see :mod:`tuneloop.contamination.semantic`)."""

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


class Checker:
    """Checks texts against one loaded index (training side: sees hashes only)."""

    max_matches = 16
    # A 13-gram that more eval items than this share is a template (a licence, a form letter),
    # no evidence of one item's leak: NeMo Curator's rule. Skipping it also keeps a record full
    # of boilerplate from visiting tens of thousands of postings (the p99 of the check).
    common_gram_items = 10
    # A user turn alone is compared semantically only with suites this large (module docstring).
    turn_min_items = 200

    def __init__(self, index: ContaminationIndex, embedder: Embedder | None = None) -> None:
        self.index = index
        self.settings = index.settings
        self.hasher = minhasher(index.settings)
        self._cutoffs = index.semantic_cutoffs()
        on = self._cutoffs is not None and bool(np.isfinite(self._cutoffs).any())
        self.embedder = embedder if on else None
        self._turn_cutoffs = self._large_suites_only(self._cutoffs)
        self._band_keys = np.stack([b.keys for b in index.bands]) if index.bands else _EMPTY2
        self._band_items = np.stack([b.items for b in index.bands]) if index.bands else _EMPTY2I
        self._gram_dir = mk.radix_directory(index.grams.keys, mk.RADIX_BITS)
        self._gram_counts = kept_gram_counts(
            index.grams.keys, index.grams.items, index.gram_counts.shape[0], self.common_gram_items
        )
        self._unit_dir = mk.radix_directory(index.units.grams.keys, mk.RADIX_BITS)

    def check(self, text: str) -> list[Match]:
        """All matches of one text, strongest first."""
        return self.check_batch([text])[0]

    def check_records(self, records: Sequence[Record]) -> list[list[Match]]:
        """:meth:`check_batch` of each record's text, its user turns also checked alone."""
        parts = [user_turns_of_obj(r.to_dict()) for r in records]
        return self.check_batch([r.content_text for r in records], parts)

    def check_batch(
        self, texts: Sequence[str], parts: Sequence[Sequence[str]] | None = None
    ) -> list[list[Match]]:
        """All matches of every text, strongest first, in one pass over the batch.

        ``parts[i]`` are pieces of text ``i`` (its user turns) checked on their own as well,
        by the lexical checks that more text around a copy would dilute; their matches are
        text i's."""
        out: list[list[Match]] = [[] for _ in texts]
        if not texts or len(self.index) == 0:
            return out
        views, owner = list(texts), list(range(len(texts)))
        for i, pieces in enumerate(parts or ()):
            for piece in pieces:
                if piece.strip() and piece != texts[i]:
                    views.append(piece)
                    owner.append(i)
        seen: list[list[Match]] = [[] for _ in views]
        batch = Batch.of(views)
        self._exact(batch, seen)
        self._canary(batch, seen)
        self._similar(batch, seen)
        self._contains(texts, out)
        if self.embedder is not None:
            self._semantic(views, owner, len(texts), out)
        for v, matches in enumerate(seen):
            out[owner[v]] += matches
        return [_strongest_each(matches) for matches in out]

    def _add(
        self,
        out: list[list[Match]],
        doc: int,
        item: int,
        method: str,
        score: float,
        field: str = "",
    ) -> None:
        out[doc].append(Match(self.index.item_ids[item], method, round(float(score), 6), field))

    def _exact(self, batch: Batch, out: list[list[Match]]) -> None:
        keys = self.index.exact
        for d, h in enumerate(exact_hashes(batch.buf, batch.offsets)):
            p = int(np.searchsorted(keys.keys, h))
            while p < keys.keys.shape[0] and keys.keys[p] == h:
                self._add(out, d, int(keys.items[p]), "exact", 1.0)
                p += 1

    def _canary(self, batch: Batch, out: list[list[Match]]) -> None:
        table = word_table()
        for n, keys in self.index.canaries.items():
            for d in range(len(batch)):
                start, end = int(batch.offsets[d]), int(batch.offsets[d + 1])
                hits = ck.window_hits(batch.buf, start, end, n, table, keys.keys)
                for item in sorted({int(keys.items[p]) for p in hits}):
                    self._add(out, d, item, "canary", 1.0)

    def _similar(self, batch: Batch, out: list[list[Match]]) -> None:
        s, idx, h = self.settings, self.index, self.hasher
        args = (
            word_table(), s.ngram, h._a, h._b, h.banding.rows, self._band_keys, self._band_items,
            idx.set_values, idx.set_offsets, s.threshold, s.overlap_n, idx.grams.keys,
            self._gram_dir, idx.grams.items, self._gram_counts, self.common_gram_items,
            s.overlap_min_fraction,
        )  # fmt: skip
        if len(batch) == 1:  # no thread pool for one record: the ingest latency path
            cap = self.max_matches
            items = np.empty((1, cap), dtype=np.int64)
            methods = np.empty((1, cap), dtype=np.int64)
            scores = np.empty((1, cap), dtype=np.float64)
            end = int(batch.offsets[1])
            n = ck.check_one(batch.buf, 0, end, *args, items[0], methods[0], scores[0])
            counts = np.array([n], dtype=np.int64)
        else:
            counts, items, methods, scores = ck.check_many(
                batch.buf, batch.offsets, *args, self.max_matches
            )
        for d in np.flatnonzero(counts):
            for k in range(int(counts[d])):
                method = "minhash" if methods[d, k] == ck.MINHASH else "ngram"
                self._add(out, int(d), int(items[d, k]), method, float(scores[d, k]))

    def _contains(self, texts: Sequence[str], out: list[list[Match]]) -> None:
        units, s = self.index.units, self.settings
        if units.grams.keys.shape[0] == 0:
            return
        batch = Batch.of([containment_text(t) for t in texts])
        args: tuple[Any, ...] = (
            word_table(), s.contain_n, units.grams.keys, self._unit_dir, units.grams.items,
            *units.kernel_args(), self._common_in(batch), s.min_novel_words,
            s.contain_min_fraction, s.span_words, s.span_min_fraction,
        )  # fmt: skip
        if len(batch) == 1:  # no thread pool for one record: the ingest latency path
            items = np.empty((1, self.max_matches), dtype=np.int64)
            fields = np.empty((1, self.max_matches), dtype=np.int64)
            scores = np.empty((1, self.max_matches), dtype=np.float64)
            end = int(batch.offsets[1])
            n = ck.contains_one(batch.buf, 0, end, *(*args, items[0], fields[0], scores[0]))
            counts = np.array([n], dtype=np.int64)
        else:
            counts, items, fields, scores = ck.contains_many(
                batch.buf, batch.offsets, *(*args, self.max_matches)
            )
        for d in np.flatnonzero(counts):
            for k in range(int(counts[d])):
                code = int(fields[d, k])
                method = "span" if code >= ck.SPAN else "contains"
                field = FIELDS[code % ck.SPAN]
                self._add(out, int(d), int(items[d, k]), method, float(scores[d, k]), field)

    def _common_in(self, batch: Batch) -> npt.NDArray[np.uint64]:
        """Eval grams that more than ``common_records`` records of this batch hold.

        NeMo Curator's rule, applied to the traffic being checked: text that many training
        records share (a canned reply, a form letter) is a template, not a leak, even when
        the eval set holds it only once. One record alone has no such context.
        """
        units, s = self.index.units, self.settings
        if len(batch) <= s.common_records:
            return _EMPTY_U64
        found, slot, counts = ck.grams_present(
            batch.buf, batch.offsets, word_table(), s.contain_n, units.grams.keys, self._unit_dir
        )
        starts = np.repeat(slot[:-1] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        present = found[starts + np.arange(int(counts.sum()))]
        keys, per_key = np.unique(present, return_counts=True)
        common: npt.NDArray[np.uint64] = keys[per_key > s.common_records]
        return common

    def _large_suites_only(self, cutoffs: F32Array | None) -> F32Array | None:
        """The cutoffs a user turn alone is held to: +inf for the items of small suites; None
        when no suite is large enough (no turn is embedded)."""
        if cutoffs is None:
            return None
        suite = self.index.item_suite
        sizes = np.bincount(suite, minlength=len(self.index.suite_names))[suite]
        turns = np.where(sizes >= self.turn_min_items, cutoffs, np.inf).astype(np.float32)
        return turns if bool(np.isfinite(turns).any()) else None

    def _semantic(
        self, views: Sequence[str], owner: Sequence[int], n_texts: int, out: list[list[Match]]
    ) -> None:
        """The nearest item at or above its suite's threshold, per text and per user turn
        (turns against large suites only); a turn's match is its record's."""
        if self.embedder is None or self._cutoffs is None:
            return
        shown = len(views) if self._turn_cutoffs is not None else n_texts
        vectors = self.embedder.embed(views[:shown])
        self._nearest(vectors[:n_texts], self._cutoffs, owner[:n_texts], out)
        if self._turn_cutoffs is not None:
            self._nearest(vectors[n_texts:], self._turn_cutoffs, owner[n_texts:shown], out)

    def _nearest(
        self, vectors: F32Array, cutoffs: F32Array, owner: Sequence[int], out: list[list[Match]]
    ) -> None:
        assert self.index.embeddings is not None
        for start in range(0, vectors.shape[0], SEMANTIC_CHUNK):
            sims = vectors[start : start + SEMANTIC_CHUNK] @ self.index.embeddings.T
            passing = np.where(sims >= cutoffs, sims, -np.inf)
            best = passing.argmax(axis=1)
            for d, item in enumerate(best.tolist()):
                if np.isfinite(passing[d, item]):
                    self._add(out, owner[start + d], item, "semantic", float(sims[d, item]))


def kept_gram_counts(
    keys: npt.NDArray[np.uint64], items: npt.NDArray[np.int64], n_items: int, common: int
) -> npt.NDArray[np.int64]:
    """Each item's distinct n-grams that at most ``common`` items share: what its coverage
    is measured against once templates are set aside."""
    if keys.shape[0] == 0:
        return np.zeros(n_items, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    runs = np.diff(np.append(starts, keys.shape[0]))
    kept = np.repeat(runs <= common, runs)
    return np.bincount(items[kept], minlength=n_items).astype(np.int64)


SEMANTIC_CHUNK = 1024  # texts compared with every embedding at once
_EMPTY2 = np.zeros((0, 0), dtype=np.uint64)
_EMPTY_U64 = np.zeros(0, dtype=np.uint64)
_EMPTY2I = np.zeros((0, 0), dtype=np.int64)


def _strongest_each(matches: list[Match]) -> list[Match]:
    """One match per (item, method, field), the highest score; strongest method first."""
    best: dict[tuple[str, str, str], Match] = {}
    for m in matches:
        key = (m.eval_id, m.method, m.field)
        if key not in best or m.score > best[key].score:
            best[key] = m
    return sorted(best.values(), key=lambda m: (METHODS.index(m.method), -m.score))


def strongest(matches: Sequence[Match]) -> Match | None:
    """The single match a report shows: the strongest method, then the highest score."""
    if not matches:
        return None
    return min(matches, key=lambda m: (METHODS.index(m.method), -m.score))
