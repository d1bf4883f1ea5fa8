"""numba kernels for the index look-ups: one call checks a document by MinHash and n-grams.

Checking one record at ingest must take well under a millisecond, so the whole path —
shingles, signature, band keys, binary searches in the index, exact Jaccard of every candidate,
13-gram coverage — runs in one compiled call without touching Python objects.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tuneloop.minhash.kernels import (
    RADIX_BITS,
    U64,
    _min_hash,
    distinct_sorted,
    jaccard,
    radix_find,
    shingles_of,
    splitmix64,
)

MINHASH = 0
NGRAM = 1


@njit(cache=True, nogil=True)
def _band_candidates(
    sig: np.ndarray, rows: int, band_keys: np.ndarray, band_items: np.ndarray
) -> np.ndarray:
    found = []
    for j in range(band_keys.shape[0]):
        h = U64(j + 1)
        for r in range(rows):
            h = splitmix64(h ^ U64(sig[j * rows + r]))
        keys = band_keys[j]
        p = np.searchsorted(keys, h)
        while p < keys.shape[0] and keys[p] == h:
            found.append(band_items[j, p])
            p += 1
    out = np.empty(len(found), dtype=np.int64)
    for t in range(len(found)):
        out[t] = found[t]
    return np.unique(out)


@njit(cache=True, nogil=True)
def _gram_hits(
    grams: np.ndarray, gram_keys: np.ndarray, gram_dir: np.ndarray, gram_items: np.ndarray
) -> np.ndarray:
    hits = []
    for g in range(grams.shape[0]):
        p = radix_find(gram_keys, gram_dir, RADIX_BITS, grams[g])
        while p >= 0 and p < gram_keys.shape[0] and gram_keys[p] == grams[g]:
            hits.append(gram_items[p])
            p += 1
    out = np.empty(len(hits), dtype=np.int64)
    for t in range(len(hits)):
        out[t] = hits[t]
    return np.sort(out)


@njit(cache=True, nogil=True)
def check_one(
    buf: np.ndarray,
    start: int,
    end: int,
    table: np.ndarray,
    ngram: int,
    a: np.ndarray,
    b: np.ndarray,
    rows: int,
    band_keys: np.ndarray,
    band_items: np.ndarray,
    set_values: np.ndarray,
    set_offsets: np.ndarray,
    threshold: float,
    overlap_n: int,
    gram_keys: np.ndarray,
    gram_dir: np.ndarray,
    gram_items: np.ndarray,
    gram_counts: np.ndarray,
    min_fraction: float,
    out_item: np.ndarray,
    out_method: np.ndarray,
    out_score: np.ndarray,
) -> int:
    """Write (item, method, score) of every MinHash and n-gram match; return how many."""
    cap = out_item.shape[0]
    k = 0
    scratch = np.empty((end - start) // 2 + 1, dtype=np.uint64)
    count = shingles_of(buf, start, end, ngram, table, scratch)
    if count > 0 and band_keys.shape[1] > 0:
        sig = np.empty(a.shape[0], dtype=np.uint32)
        _min_hash(scratch, count, a, b, sig)
        cands = _band_candidates(sig, rows, band_keys, band_items)
        if cands.shape[0] > 0:
            mine = distinct_sorted(scratch[:count])
            for c in cands:
                sim = jaccard(mine, set_values[set_offsets[c] : set_offsets[c + 1]])
                if sim >= threshold and k < cap:
                    out_item[k], out_method[k], out_score[k] = c, MINHASH, sim
                    k += 1
    count = shingles_of(buf, start, end, overlap_n, table, scratch)
    if count > 0 and gram_keys.shape[0] > 0:
        hits = _gram_hits(distinct_sorted(scratch[:count]), gram_keys, gram_dir, gram_items)
        s = 0
        while s < hits.shape[0]:
            e = s
            while e < hits.shape[0] and hits[e] == hits[s]:
                e += 1
            cover = (e - s) / gram_counts[hits[s]]
            if cover >= min_fraction and k < cap:
                out_item[k], out_method[k], out_score[k] = hits[s], NGRAM, cover
                k += 1
            s = e
    return k


@njit(cache=True, parallel=True, nogil=True)
def check_many(
    buf: np.ndarray,
    offsets: np.ndarray,
    table: np.ndarray,
    ngram: int,
    a: np.ndarray,
    b: np.ndarray,
    rows: int,
    band_keys: np.ndarray,
    band_items: np.ndarray,
    set_values: np.ndarray,
    set_offsets: np.ndarray,
    threshold: float,
    overlap_n: int,
    gram_keys: np.ndarray,
    gram_dir: np.ndarray,
    gram_items: np.ndarray,
    gram_counts: np.ndarray,
    min_fraction: float,
    cap: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`check_one` over a batch in parallel; at most ``cap`` matches per document."""
    n = offsets.shape[0] - 1
    items = np.empty((n, cap), dtype=np.int64)
    methods = np.empty((n, cap), dtype=np.int64)
    scores = np.empty((n, cap), dtype=np.float64)
    counts = np.empty(n, dtype=np.int64)
    for d in prange(n):
        counts[d] = check_one(
            buf, offsets[d], offsets[d + 1], table, ngram, a, b, rows, band_keys, band_items,
            set_values, set_offsets, threshold, overlap_n, gram_keys, gram_dir, gram_items,
            gram_counts, min_fraction, items[d], methods[d], scores[d],
        )  # fmt: skip
    return counts, items, methods, scores


@njit(cache=True, nogil=True)
def window_hits(
    buf: np.ndarray, start: int, end: int, n: int, table: np.ndarray, keys: np.ndarray
) -> np.ndarray:
    """Positions in ``keys`` (sorted) of every n-word window of one document found there."""
    scratch = np.empty((end - start) // 2 + 1, dtype=np.uint64)
    count = shingles_of(buf, start, end, n, table, scratch)
    hits = []
    for s in range(count):
        p = np.searchsorted(keys, scratch[s])
        while p < keys.shape[0] and keys[p] == scratch[s]:
            hits.append(p)
            p += 1
    out = np.empty(len(hits), dtype=np.int64)
    for t in range(len(hits)):
        out[t] = hits[t]
    return out
