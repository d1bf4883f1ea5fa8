"""numba kernels: bytes → words → shingle hashes → MinHash signatures, band keys, Jaccard.

Input is one byte buffer holding a batch of documents back to back (UTF-8) with an offsets
array, so a whole chunk crosses from Python into machine code in one call, and documents are
processed in parallel.

Tokenization reproduces :func:`tuneloop.textnorm.normalize`: the caller passes text that is
ASCII as it is, or else already NFKC-normalized and case-folded; the kernels lower-case ASCII
letters and treat every code point whose ``word_table`` entry is 0 (anything but a letter, mark
or number) as a word boundary. A property test checks both paths give the same words.

Hashes: a word by FNV-1a-64 over its bytes, premixed with splitmix64; a shingle (``ngram``
consecutive words, or the whole text when it has fewer) by a polynomial rolled along the text,
finalized with splitmix64. Permutation ``p`` is the multiply-add-shift hash
``(a_p * x + b_p) >> 32``, giving 32-bit signature values.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

U64 = np.uint64
FNV_OFFSET = U64(0xCBF29CE484222325)
FNV_PRIME = U64(0x100000001B3)
SM_GAMMA = U64(0x9E3779B97F4A7C15)
SM_M1 = U64(0xBF58476D1CE4E5B9)
SM_M2 = U64(0x94D049BB133111EB)
POLY = U64(0xC6668D9433DF0339)  # an odd 64-bit multiplier
MASK32 = U64(0xFFFFFFFF)
S27 = U64(27)
S30 = U64(30)
S31 = U64(31)
S32 = U64(32)


@njit(cache=True, inline="always")
def splitmix64(x: np.uint64) -> np.uint64:
    z = x + SM_GAMMA
    z = (z ^ (z >> S30)) * SM_M1
    z = (z ^ (z >> S27)) * SM_M2
    return z ^ (z >> S31)


@njit(cache=True, inline="always")
def _char_at(buf: np.ndarray, k: int, end: int) -> tuple[int, int]:
    """(code point, byte length) of the UTF-8 sequence starting at buf[k]."""
    c = int(buf[k])
    if c < 0x80:
        return c, 1
    if c < 0xE0:
        n, cp = 2, c & 0x1F
    elif c < 0xF0:
        n, cp = 3, c & 0x0F
    else:
        n, cp = 4, c & 0x07
    n = min(n, end - k)
    for t in range(1, n):
        cp = (cp << 6) | (int(buf[k + t]) & 0x3F)
    return cp, n


@njit(cache=True, inline="always")
def _classify(buf: np.ndarray, k: int, end: int, table: np.ndarray) -> tuple[bool, int]:
    """(is the character at buf[k] part of a word, its length in bytes)."""
    c = buf[k]
    if c < 128:
        return (table[c] & 1) != 0, 1
    cp, size = _char_at(buf, k, end)
    return (table[cp] & 1) != 0, size


@njit(cache=True)
def word_hashes(buf: np.ndarray, start: int, end: int, table: np.ndarray, out: np.ndarray) -> int:
    """Write the hash of every word of buf[start:end] into out; return the word count."""
    n = 0
    h = FNV_OFFSET
    inside = False
    k = start
    while k < end:
        c = buf[k]
        is_word, size = _classify(buf, k, end, table)
        if is_word:
            if not inside:
                h = FNV_OFFSET
                inside = True
            if size == 1:
                if 65 <= c <= 90:
                    c = c + 32
                h = (h ^ U64(c)) * FNV_PRIME
            else:
                for t in range(size):
                    h = (h ^ U64(buf[k + t])) * FNV_PRIME
        elif inside:
            out[n] = splitmix64(h)
            n += 1
            inside = False
        k += size
    if inside:
        out[n] = splitmix64(h)
        n += 1
    return n


@njit(cache=True)
def shingle_count(n_words: int, ngram: int) -> int:
    """How many shingles a text of n_words has (a short text is one shingle)."""
    if n_words == 0:
        return 0
    if n_words < ngram:
        return 1
    return n_words - ngram + 1


@njit(cache=True)
def shingles_of(
    buf: np.ndarray, start: int, end: int, ngram: int, table: np.ndarray, out: np.ndarray
) -> int:
    """Write the shingle hashes of one document (text order, repeats kept); return the count.

    ``out`` must hold one value per word of the document. The polynomial is rolled so each
    shingle costs O(1) rather than O(ngram).
    """
    nw = word_hashes(buf, start, end, table, out)
    ns = shingle_count(nw, ngram)
    if ns == 0:
        return 0
    span = min(ngram, nw)
    top = U64(1)
    h = U64(0)
    for t in range(span):
        h = h * POLY + out[t]
        if t > 0:
            top = top * POLY
    first_word = out[0]
    out[0] = splitmix64(h ^ U64(span))
    for s in range(1, ns):
        h = (h - first_word * top) * POLY + out[s + span - 1]
        first_word = out[s]
        out[s] = splitmix64(h ^ U64(span))
    return ns


@njit(cache=True, inline="always")
def _min_one(values: np.ndarray, count: int, a: np.uint64, b: np.uint64) -> np.uint64:
    m = MASK32
    for s in range(count):
        m = min(m, (a * values[s] + b) >> S32)
    return m


@njit(cache=True)
def _min_hash(
    values: np.ndarray, count: int, a: np.ndarray, b: np.ndarray, sig: np.ndarray
) -> None:
    """The minimum of each permutation over the shingles, four permutations per pass.

    Four running minima in registers per pass over the shingles (rather than one pass per
    shingle over 128 minima in memory) lets each shingle be loaded once for four permutations:
    about 1.7× faster, with the same values.
    """
    k = a.shape[0]
    for p in range(0, k - 3, 4):
        a0, a1, a2, a3 = a[p], a[p + 1], a[p + 2], a[p + 3]
        b0, b1, b2, b3 = b[p], b[p + 1], b[p + 2], b[p + 3]
        m0 = m1 = m2 = m3 = MASK32
        for s in range(count):
            x = values[s]
            m0 = min(m0, (a0 * x + b0) >> S32)
            m1 = min(m1, (a1 * x + b1) >> S32)
            m2 = min(m2, (a2 * x + b2) >> S32)
            m3 = min(m3, (a3 * x + b3) >> S32)
        sig[p], sig[p + 1], sig[p + 2], sig[p + 3] = m0, m1, m2, m3
    for p in range(k - k % 4, k):
        sig[p] = _min_one(values, count, a[p], b[p])


@njit(cache=True, parallel=True, nogil=True)
def signatures(
    buf: np.ndarray,
    offsets: np.ndarray,
    ngram: int,
    table: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
) -> np.ndarray:
    """MinHash signature of every document, tokenized and shingled on the fly."""
    n = offsets.shape[0] - 1
    sig = np.empty((n, a.shape[0]), dtype=np.uint32)
    for d in prange(n):
        start, end = offsets[d], offsets[d + 1]
        scratch = np.empty((end - start) // 2 + 1, dtype=np.uint64)
        count = shingles_of(buf, start, end, ngram, table, scratch)
        _min_hash(scratch, count, a, b, sig[d])
    return sig


@njit(cache=True)
def distinct_sorted(x: np.ndarray) -> np.ndarray:
    """The distinct values of x, sorted: the set a Jaccard similarity is computed on."""
    y = np.sort(x)
    if y.shape[0] == 0:
        return y
    k = 1
    for s in range(1, y.shape[0]):
        if y[s] != y[k - 1]:
            y[k] = y[s]
            k += 1
    return y[:k]


@njit(cache=True)
def _count_words(buf: np.ndarray, start: int, end: int, table: np.ndarray) -> int:
    n = 0
    inside = False
    k = start
    while k < end:
        is_word, size = _classify(buf, k, end, table)
        if is_word and not inside:
            n += 1
        inside = is_word
        k += size
    return n


@njit(cache=True, parallel=True, nogil=True)
def shingle_sets(
    buf: np.ndarray, offsets: np.ndarray, ngram: int, table: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every document's shingles as a sorted set, concatenated, with their offsets.

    Memory is one uint64 per word: words are counted first, and the sets are compacted in place.
    """
    n = offsets.shape[0] - 1
    words = np.empty(n, dtype=np.int64)
    for d in prange(n):
        words[d] = max(1, _count_words(buf, offsets[d], offsets[d + 1], table))
    bound = np.zeros(n + 1, dtype=np.int64)
    bound[1:] = np.cumsum(words)
    values = np.empty(bound[n], dtype=np.uint64)
    counts = np.empty(n, dtype=np.int64)
    for d in prange(n):
        part = values[bound[d] : bound[d + 1]]
        c = shingles_of(buf, offsets[d], offsets[d + 1], ngram, table, part)
        uniq = distinct_sorted(part[:c])
        counts[d] = uniq.shape[0]
        part[: uniq.shape[0]] = uniq
    out_off = np.zeros(n + 1, dtype=np.int64)
    out_off[1:] = np.cumsum(counts)
    _compact(values, bound, out_off)
    return values[: out_off[n]], out_off


@njit(cache=True)
def _compact(values: np.ndarray, bound: np.ndarray, out_off: np.ndarray) -> None:
    """Move each set left to its final place, one value at a time, in order.

    A set only ever moves onto space already read; element by element and serial (numba would
    split a slice copy across threads, and overlapping chunks would race).
    """
    for d in range(out_off.shape[0] - 1):
        src = bound[d]
        for k in range(out_off[d], out_off[d + 1]):
            values[k] = values[src]
            src += 1


@njit(cache=True, parallel=True, nogil=True)
def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per (document, band): equal keys mean the band's rows are all equal."""
    n = sig.shape[0]
    out = np.empty((n, bands), dtype=np.uint64)
    for d in prange(n):
        for j in range(bands):
            h = U64(j + 1)
            for r in range(rows):
                h = splitmix64(h ^ U64(sig[d, j * rows + r]))
            out[d, j] = h
    return out


@njit(cache=True)
def intersection_size(x: np.ndarray, y: np.ndarray) -> int:
    """Size of the intersection of two sorted arrays of distinct values."""
    i = 0
    j = 0
    n = 0
    while i < x.shape[0] and j < y.shape[0]:
        if x[i] == y[j]:
            n += 1
            i += 1
            j += 1
        elif x[i] < y[j]:
            i += 1
        else:
            j += 1
    return n


@njit(cache=True)
def jaccard(x: np.ndarray, y: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted shingle sets (1.0 for two empty sets)."""
    if x.shape[0] == 0 and y.shape[0] == 0:
        return 1.0
    inter = intersection_size(x, y)
    return float(inter / (x.shape[0] + y.shape[0] - inter))


@njit(cache=True)
def band_buckets(
    sorted_keys: np.ndarray, order: np.ndarray, first_id: int, ids: np.ndarray
) -> np.ndarray:
    """Number one band's buckets of two or more documents, from ``first_id`` on.

    ``ids[d]`` gets document d's bucket number, or -1 when no other document shares its key (a
    bucket of one can't hold a candidate, so it costs nothing later). Returns the sizes of the
    numbered buckets, in order.
    """
    n = sorted_keys.shape[0]
    sizes = np.empty(n // 2 + 1, dtype=np.int64)
    count = 0
    start = 0
    while start < n:
        end = start + 1
        while end < n and sorted_keys[end] == sorted_keys[start]:
            end += 1
        bucket = -1
        if end - start > 1:
            bucket = first_id + count
            sizes[count] = end - start
            count += 1
        for t in range(start, end):
            ids[order[t]] = bucket
        start = end
    return sizes[:count]


@njit(cache=True)
def _kept_candidates(
    ids: np.ndarray,
    kept: np.ndarray,
    kept_start: np.ndarray,
    kept_count: np.ndarray,
    out: np.ndarray,
) -> int:
    """Write the distinct kept documents that share a bucket with one document, ascending."""
    n = 0
    for b in range(ids.shape[0]):
        bucket = ids[b]
        if bucket < 0:
            continue
        base = kept_start[bucket]
        for t in range(kept_count[bucket]):
            out[n] = kept[base + t]
            n += 1
    if n < 2:
        return n
    out[:n].sort()
    k = 1
    for t in range(1, n):
        if out[t] != out[k - 1]:
            out[k] = out[t]
            k += 1
    return k


@njit(cache=True)
def _keep(
    d: int, ids: np.ndarray, kept: np.ndarray, kept_start: np.ndarray, kept_count: np.ndarray
) -> None:
    """Add a kept document to each of its buckets that still has room."""
    for b in range(ids.shape[0]):
        bucket = ids[b]
        if bucket < 0:
            continue
        if kept_start[bucket] + kept_count[bucket] < kept_start[bucket + 1]:
            kept[kept_start[bucket] + kept_count[bucket]] = d
            kept_count[bucket] += 1


@njit(cache=True)
def greedy_buckets(
    ids: np.ndarray,
    kept_start: np.ndarray,
    local: np.ndarray,
    sets: np.ndarray,
    set_offsets: np.ndarray,
    threshold: float,
    dup_of: np.ndarray,
    score: np.ndarray,
) -> tuple[int, int]:
    """Mark each document a duplicate of the earliest kept document it truly matches.

    ``ids[d]`` are document d's bucket numbers, one per band (-1: alone in that band); bucket
    ``k`` has room for ``kept_start[k + 1] - kept_start[k]`` kept documents. Documents are
    decided in input order and compared only with the kept documents of their buckets, earliest
    first: a removed document is never a candidate again, so a pile of copies costs one
    comparison per copy, not one per pair, and no pair list is ever built. Every reported pair
    has an exact Jaccard ≥ threshold. Returns (distinct candidates, Jaccard computations).
    """
    n, bands = ids.shape
    room = 1
    for k in range(kept_start.shape[0] - 1):
        room = max(room, kept_start[k + 1] - kept_start[k])
    kept = np.empty(max(kept_start[-1], 1), dtype=np.int64)
    kept_count = np.zeros(kept_start.shape[0] - 1, dtype=np.int64)
    found = np.empty(bands * room, dtype=np.int64)
    candidates = 0
    computed = 0
    for d in range(n):
        c = _kept_candidates(ids[d], kept, kept_start, kept_count, found)
        candidates += c
        y = sets[set_offsets[local[d]] : set_offsets[local[d] + 1]] if c else sets[:0]
        for t in range(c):
            i = found[t]
            x = sets[set_offsets[local[i]] : set_offsets[local[i] + 1]]
            computed += 1
            sim = jaccard(x, y)
            if sim >= threshold:
                dup_of[d] = i
                score[d] = sim
                break
        if dup_of[d] < 0:
            _keep(d, ids[d], kept, kept_start, kept_count)
    return candidates, computed


@njit(cache=True)
def gather(buf: np.ndarray, offsets: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The documents ``idx`` of a packed batch, packed again (to re-read a few of many)."""
    new_off = np.zeros(idx.shape[0] + 1, dtype=np.int64)
    for t in range(idx.shape[0]):
        d = idx[t]
        new_off[t + 1] = new_off[t] + offsets[d + 1] - offsets[d]
    out = np.empty(max(int(new_off[idx.shape[0]]), 1), dtype=np.uint8)
    for t in range(idx.shape[0]):
        d = idx[t]
        out[new_off[t] : new_off[t + 1]] = buf[offsets[d] : offsets[d + 1]]
    return out, new_off


@njit(cache=True)
def text_hash(buf: np.ndarray, start: int, end: int, table: np.ndarray) -> np.uint64:
    """Hash of the whole normalized text (its word sequence): equal for equal normalizations."""
    words = np.empty((end - start) // 2 + 1, dtype=np.uint64)
    n = word_hashes(buf, start, end, table, words)
    h = U64(0x51ED270B27C4F1A3)
    for t in range(n):
        h = h * POLY + words[t]
    return splitmix64(h ^ U64(n))


@njit(cache=True, parallel=True, nogil=True)
def text_hashes(buf: np.ndarray, offsets: np.ndarray, table: np.ndarray) -> np.ndarray:
    n = offsets.shape[0] - 1
    out = np.empty(n, dtype=np.uint64)
    for d in prange(n):
        out[d] = text_hash(buf, offsets[d], offsets[d + 1], table)
    return out


RADIX_BITS = 20


@njit(cache=True)
def radix_directory(keys: np.ndarray, bits: int) -> np.ndarray:
    """For sorted keys: where each value of the top ``bits`` bits starts (one extra at the end).

    A look-up then reads one directory entry and scans a handful of keys, instead of the
    ~24 cache-missing steps of a binary search over millions of keys.
    """
    size = 1 << bits
    shift = U64(64 - bits)
    out = np.empty(size + 1, dtype=np.int64)
    k = 0
    for p in range(size):
        while k < keys.shape[0] and np.int64(keys[k] >> shift) < p:
            k += 1
        out[p] = k
    out[size] = keys.shape[0]
    return out


@njit(cache=True, inline="always")
def radix_find(keys: np.ndarray, directory: np.ndarray, bits: int, h: np.uint64) -> int:
    """Index of the first key equal to h, or -1."""
    top = np.int64(h >> U64(64 - bits))
    for p in range(directory[top], directory[top + 1]):
        if keys[p] == h:
            return p
        if keys[p] > h:
            return -1
    return -1


@njit(cache=True, parallel=True, nogil=True)
def needs_python(buf: np.ndarray, offsets: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Which documents hold a character only Python's NFKC + case folding can handle.

    ``table[cp] & 2`` marks such characters (see :func:`tuneloop.minhash.signatures.char_table`).
    """
    n = offsets.shape[0] - 1
    out = np.zeros(n, dtype=np.bool_)
    for d in prange(n):
        k = offsets[d]
        end = offsets[d + 1]
        while k < end:
            if buf[k] < 128:
                k += 1
                continue
            cp, size = _char_at(buf, k, end)
            if table[cp] & 2:
                out[d] = True
                break
            k += size
    return out
