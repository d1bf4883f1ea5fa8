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
    _count_words,
    _min_hash,
    distinct_sorted,
    jaccard,
    radix_find,
    shingle_count,
    shingles_of,
    splitmix64,
)

MINHASH = 0
NGRAM = 1
SPAN = 8  # added to a field number: the unit was matched by a contiguous quoted span


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
    grams: np.ndarray,
    gram_keys: np.ndarray,
    gram_dir: np.ndarray,
    gram_items: np.ndarray,
    max_items: int,
) -> np.ndarray:
    """The item of every (gram, item) posting of these grams, sorted; a gram posted for more
    than ``max_items`` items is skipped (its run in the sorted keys is longer than that)."""
    hits = []
    n = gram_keys.shape[0]
    for g in range(grams.shape[0]):
        p = radix_find(gram_keys, gram_dir, RADIX_BITS, grams[g])
        if p < 0 or (p + max_items < n and gram_keys[p + max_items] == grams[g]):
            continue
        while p < n and gram_keys[p] == grams[g]:
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
    common_items: int,
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
        grams = distinct_sorted(scratch[:count])
        hits = _gram_hits(grams, gram_keys, gram_dir, gram_items, common_items)
        s = 0
        while s < hits.shape[0]:
            e = s
            while e < hits.shape[0] and hits[e] == hits[s]:
                e += 1
            kept = gram_counts[hits[s]]  # the item's grams that are not templates
            cover = (e - s) / kept if kept > 0 else 0.0
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
    common_items: int,
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
            gram_counts, common_items, min_fraction, items[d], methods[d], scores[d],
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


@njit(cache=True)
def unit_grams(
    buf: np.ndarray, offsets: np.ndarray, n: int, table: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every unit's n-gram hashes in text order (repeats kept), their offsets, its word count.

    Containment is scored on words, so the index keeps each unit's grams by position, not
    only as a set: a word counts as found when any found gram covers it.
    """
    units = offsets.shape[0] - 1
    words = np.empty(units, dtype=np.int64)
    seq_off = np.zeros(units + 1, dtype=np.int64)
    for u in range(units):
        words[u] = _count_words(buf, offsets[u], offsets[u + 1], table)
        seq_off[u + 1] = seq_off[u] + shingle_count(words[u], n)
    seq = np.empty(seq_off[units], dtype=np.uint64)
    for u in range(units):
        scratch = np.empty(words[u] + 1, dtype=np.uint64)
        count = shingles_of(buf, offsets[u], offsets[u + 1], n, table, scratch)
        seq[seq_off[u] : seq_off[u] + count] = scratch[:count]
    return seq, seq_off, words


@njit(cache=True, inline="always")
def _in_sorted(grams: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Per gram: is it in ``keys`` (sorted)."""
    out = np.zeros(grams.shape[0], dtype=np.bool_)
    for g in range(grams.shape[0]):
        p = np.searchsorted(keys, grams[g])
        out[g] = p < keys.shape[0] and keys[p] == grams[g]
    return out


@njit(cache=True, inline="always")
def _covered(seq: np.ndarray, n: int, n_words: int, found: np.ndarray) -> np.ndarray:
    """Per word: is it inside at least one gram whose flag in ``found`` is set."""
    depth = np.zeros(n_words + 1, dtype=np.int64)
    for g in range(seq.shape[0]):
        if found[g]:
            depth[g] += 1
            depth[min(g + n, n_words)] -= 1
    out = np.empty(n_words, dtype=np.bool_)
    run = 0
    for w in range(n_words):
        run += depth[w]
        out[w] = run > 0
    return out


@njit(cache=True)
def novel_words(
    seq: np.ndarray,
    seq_off: np.ndarray,
    words: np.ndarray,
    word_off: np.ndarray,
    n: int,
    common: np.ndarray,
) -> np.ndarray:
    """Per word of every unit: is it in no common gram (template).

    Words that only appear inside grams shared by many eval items are the template; what is
    left (names, numbers, the question itself) is what a leak must reproduce.
    """
    units = words.shape[0]
    flags = np.zeros(word_off[units], dtype=np.bool_)
    for u in range(units):
        grams = seq[seq_off[u] : seq_off[u + 1]]
        templated = _covered(grams, n, words[u], _in_sorted(grams, common))
        for w in range(words[u]):
            flags[word_off[u] + w] = not templated[w]
    return flags


@njit(cache=True, inline="always")
def _found_novel(
    grams: np.ndarray, n: int, n_words: int, novel: np.ndarray, mine: np.ndarray
) -> tuple[int, int]:
    """How many novel words of one unit lie inside a gram that the document has, and the
    most of them in one contiguous stretch of the unit (template words neither count nor
    break it): a span the document quotes verbatim."""
    covered = _covered(grams, n, n_words, _in_sorted(grams, mine))
    total = 0
    run = 0
    longest = 0
    for w in range(n_words):
        if not novel[w]:
            continue
        if covered[w]:
            total += 1
            run += 1
            longest = max(longest, run)
        else:
            run = 0
    return total, longest


@njit(cache=True, inline="always")
def _novel_here(
    grams: np.ndarray, n: int, n_words: int, novel: np.ndarray, extra_common: np.ndarray
) -> np.ndarray:
    """A unit's novel words, less those covered by grams common in the traffic checked now."""
    if extra_common.shape[0] == 0:
        return novel
    common = _in_sorted(grams, extra_common)
    out: np.ndarray = novel & ~_covered(grams, n, n_words, common)
    return out


@njit(cache=True, nogil=True)
def contains_one(
    buf: np.ndarray,
    start: int,
    end: int,
    table: np.ndarray,
    n: int,
    gram_keys: np.ndarray,
    gram_dir: np.ndarray,
    gram_units: np.ndarray,
    u_items: np.ndarray,
    u_fields: np.ndarray,
    u_seq: np.ndarray,
    u_seq_off: np.ndarray,
    u_words: np.ndarray,
    u_word_off: np.ndarray,
    u_novel: np.ndarray,
    u_distinct: np.ndarray,
    item_first_unit: np.ndarray,
    extra_common: np.ndarray,
    min_novel: int,
    min_fraction: float,
    span_words: int,
    span_fraction: float,
    out_item: np.ndarray,
    out_field: np.ndarray,
    out_score: np.ndarray,
) -> int:
    """Write (item, field, containment) of every eval unit this document contains; return how many.

    Candidates come from the inverted index (a unit with at least a quarter of its distinctive
    grams here); each is verified exactly: its containment is the share of its novel words
    that lie inside a gram the document has, so a swapped word costs one word, not n grams.
    A unit with fewer than ``min_novel`` novel words is no evidence. When the item has two
    units and the document holds ``min_fraction`` of their novel words together, the field
    is the whole item (0), else the best single unit at or above ``min_fraction``. Failing
    both, a unit whose novel words the document quotes in one contiguous span of at least
    ``span_words`` words and ``span_fraction`` of the unit is a match too, its field plus
    ``SPAN`` (a question pasted from a ``text`` item that holds its answer as well, or a
    multiple-choice question pasted without its choices).
    """
    cap = out_item.shape[0]
    scratch = np.empty((end - start) // 2 + 1, dtype=np.uint64)
    count = shingles_of(buf, start, end, n, table, scratch)
    if count == 0 or gram_keys.shape[0] == 0:
        return 0
    mine = distinct_sorted(scratch[:count])
    hits = _gram_hits(mine, gram_keys, gram_dir, gram_units, gram_keys.shape[0])
    k = 0
    e = 0
    while e < hits.shape[0] and k < cap:
        item = u_items[hits[e]]
        found = 0
        novel = 0
        units = 0
        best = 0.0
        best_field = -1
        span = 0.0
        span_field = -1
        for u in range(item_first_unit[item], item_first_unit[item + 1]):
            f = e
            while f < hits.shape[0] and hits[f] == u:
                f += 1
            grams = u_seq[u_seq_off[u] : u_seq_off[u + 1]]
            flags = u_novel[u_word_off[u] : u_word_off[u + 1]]
            flags = _novel_here(grams, n, u_words[u], flags, extra_common)
            size = flags.sum()
            if size >= min_novel:
                units += 1
                novel += size
                if f > e and 4 * (f - e) >= u_distinct[u]:
                    got, longest = _found_novel(grams, n, u_words[u], flags, mine)
                    found += got
                    if got / size > best:
                        best, best_field = got / size, u_fields[u]
                    quoted = longest / size
                    if longest >= span_words and quoted >= span_fraction and quoted > span:
                        span, span_field = quoted, u_fields[u]
            e = f
        whole = found / novel if novel > 0 else 0.0
        if units > 1 and whole >= min_fraction:
            out_item[k], out_field[k], out_score[k] = item, 0, whole
            k += 1
        elif best_field >= 0 and best >= min_fraction:
            out_item[k], out_field[k], out_score[k] = item, best_field, best
            k += 1
        elif span_field >= 0:
            out_item[k], out_field[k], out_score[k] = item, span_field + SPAN, span
            k += 1
    return k


@njit(cache=True, parallel=True, nogil=True)
def contains_many(
    buf: np.ndarray,
    offsets: np.ndarray,
    table: np.ndarray,
    n: int,
    gram_keys: np.ndarray,
    gram_dir: np.ndarray,
    gram_units: np.ndarray,
    u_items: np.ndarray,
    u_fields: np.ndarray,
    u_seq: np.ndarray,
    u_seq_off: np.ndarray,
    u_words: np.ndarray,
    u_word_off: np.ndarray,
    u_novel: np.ndarray,
    u_distinct: np.ndarray,
    item_first_unit: np.ndarray,
    extra_common: np.ndarray,
    min_novel: int,
    min_fraction: float,
    span_words: int,
    span_fraction: float,
    cap: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`contains_one` over a batch in parallel; at most ``cap`` matches per document."""
    docs = offsets.shape[0] - 1
    items = np.empty((docs, cap), dtype=np.int64)
    fields = np.empty((docs, cap), dtype=np.int64)
    scores = np.empty((docs, cap), dtype=np.float64)
    counts = np.empty(docs, dtype=np.int64)
    for d in prange(docs):
        counts[d] = contains_one(
            buf, offsets[d], offsets[d + 1], table, n, gram_keys, gram_dir, gram_units,
            u_items, u_fields, u_seq, u_seq_off, u_words, u_word_off, u_novel, u_distinct,
            item_first_unit, extra_common, min_novel, min_fraction, span_words, span_fraction,
            items[d], fields[d], scores[d],
        )  # fmt: skip
    return counts, items, fields, scores


@njit(cache=True, parallel=True, nogil=True)
def grams_present(
    buf: np.ndarray,
    offsets: np.ndarray,
    table: np.ndarray,
    n: int,
    gram_keys: np.ndarray,
    gram_dir: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each document: the distinct indexed grams it holds (concatenated, and how many).

    Counting these over a batch says which eval grams are common in the traffic itself.
    """
    docs = offsets.shape[0] - 1
    slot = np.zeros(docs + 1, dtype=np.int64)
    for d in range(docs):
        slot[d + 1] = slot[d] + (offsets[d + 1] - offsets[d]) // 2 + 1
    out = np.empty(slot[docs], dtype=np.uint64)
    counts = np.zeros(docs, dtype=np.int64)
    for d in prange(docs):
        scratch = np.empty(slot[d + 1] - slot[d], dtype=np.uint64)
        c = shingles_of(buf, offsets[d], offsets[d + 1], n, table, scratch)
        mine = distinct_sorted(scratch[:c])
        k = 0
        for g in range(mine.shape[0]):
            if radix_find(gram_keys, gram_dir, RADIX_BITS, mine[g]) >= 0:
                out[slot[d] + k] = mine[g]
                k += 1
        counts[d] = k
    return out, slot, counts
