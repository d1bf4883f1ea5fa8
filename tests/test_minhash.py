"""MinHash, LSH banding and near-duplicate resolution against a plain-Python reference."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuneloop.minhash import kernels
from tuneloop.minhash.lsh import choose_banding
from tuneloop.minhash.neardup import NearDupFinder
from tuneloop.minhash.signatures import MinHasher, pack
from tuneloop.textnorm import normalize

WORDS = [f"w{i}" for i in range(400)]


def ref_shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = normalize(text).split()
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def ref_jaccard(a: str, b: str, n: int = 5) -> float:
    x, y = ref_shingles(a, n), ref_shingles(b, n)
    return 1.0 if not x and not y else len(x & y) / len(x | y)


def edit(text: str, k: int, rng: random.Random) -> str:
    words = text.split()
    for i in rng.sample(range(len(words)), k):
        words[i] = rng.choice(WORDS) + "x"
    return " ".join(words)


texts = st.lists(st.sampled_from(WORDS[:30]), min_size=0, max_size=40).map(" ".join)


@given(texts, texts, st.integers(1, 6))
def test_exact_jaccard_matches_reference(a: str, b: str, n: int) -> None:
    sets = MinHasher(ngram=n).shingle_sets(*pack([a, b]))
    assert kernels.jaccard(sets.of(0), sets.of(1)) == pytest.approx(ref_jaccard(a, b, n))


@pytest.mark.parametrize(("num_perm", "threshold"), [(128, 0.8), (128, 0.5), (256, 0.9), (64, 0.7)])
def test_banding_meets_recall_and_fits(num_perm: int, threshold: float) -> None:
    banding = choose_banding(num_perm, threshold)
    assert banding.bands * banding.rows <= num_perm
    assert banding.collision_probability(threshold) >= 0.97


def test_signature_agreement_estimates_jaccard() -> None:
    rng = random.Random(0)
    base = " ".join(rng.choice(WORDS) for _ in range(300))
    other = edit(base, 12, rng)
    hasher = MinHasher(num_perm=1024)
    sig = hasher.signatures(*pack([base, other]))
    estimate = float(np.mean(sig[0] == sig[1]))
    assert estimate == pytest.approx(ref_jaccard(base, other), abs=0.05)


def _dedup(docs: list[str], budget: int = 1 << 30) -> tuple[list[int], list[float]]:
    finder = NearDupFinder(MinHasher(), memory_budget=budget)
    for start in range(0, len(docs), 7):  # several chunks
        finder.add_packed(*pack(docs[start : start + 7]))
    result = finder.resolve()
    return result.dup_of.tolist(), result.jaccard.tolist()


def _corpus(seed: int) -> list[str]:
    rng = random.Random(seed)
    base = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 120))) for _ in range(30)]
    docs = list(base)
    for _ in range(30):
        docs.append(edit(rng.choice(base), rng.randint(0, 6), rng))
    return docs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_reported_pair_is_at_or_above_threshold(seed: int) -> None:
    docs = _corpus(seed)
    dup_of, scores = _dedup(docs)
    for j, i in enumerate(dup_of):
        if i < 0:
            continue
        assert i < j and dup_of[i] < 0, "a duplicate points at an earlier kept record"
        assert scores[j] == pytest.approx(ref_jaccard(docs[i], docs[j]))
        assert scores[j] >= 0.8


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kept_records_have_no_kept_near_duplicate_before_them(seed: int) -> None:
    docs = _corpus(seed)
    dup_of, _ = _dedup(docs)
    kept = [k for k, d in enumerate(dup_of) if d < 0]
    misses = [
        (i, j)
        for a, i in enumerate(kept)
        for j in kept[a + 1 :]
        if ref_jaccard(docs[i], docs[j]) >= 0.8
    ]
    # LSH may miss a pair with probability ≤ 3% at J = 0.8, far less above it.
    assert len(misses) <= 1


def test_spilling_to_disk_gives_the_same_answer() -> None:
    docs = _corpus(5)
    assert _dedup(docs, budget=1 << 30) == _dedup(docs, budget=64)


def test_empty_texts_are_duplicates_of_each_other_only() -> None:
    dup_of, _ = _dedup(["", "!!!", "real words here that are long enough to matter"])
    assert dup_of == [-1, 0, -1]


def _reference_dedup(docs: list[str]) -> list[int]:
    """The rule spelled out: each document duplicates the earliest kept document that shares
    an LSH band with it and has an exact Jaccard ≥ 0.8 (every pair checked, O(n²))."""
    hasher = MinHasher()
    buf, offsets = pack(docs)
    keys = hasher.band_keys(hasher.signatures(buf, offsets))
    sets = hasher.shingle_sets(buf, offsets)
    dup_of = [-1] * len(docs)
    for j in range(len(docs)):
        for i in range(j):
            shares_band = bool((keys[i] == keys[j]).any())
            similar = kernels.jaccard(sets.of(i), sets.of(j)) >= hasher.threshold
            if dup_of[i] < 0 and shares_band and similar:
                dup_of[j] = i
                break
    return dup_of


clusters = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 3), st.integers(0, 2**16)), max_size=60
)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**16), clusters)
def test_bucket_greedy_matches_every_pair_rule(
    seed: int, copies: list[tuple[int, int, int]]
) -> None:
    """Clusters of near-copies (0–3 words edited, and copies of copies: chains where a copy is
    near a removed copy but not the kept original) in any order."""
    rng = random.Random(seed)
    docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 100))) for _ in range(5)]
    for pick, k, s in copies:
        source = docs[pick] if s % 2 else docs[-1 - pick]
        docs.append(edit(source, min(k, len(source.split())), random.Random(s)))
    random.Random(seed).shuffle(docs)
    assert _dedup(docs)[0] == _reference_dedup(docs)


def test_a_pile_of_copies_costs_one_comparison_per_copy() -> None:
    """300 copies of one text (more than a bucket's room) and their near-copies: all removed,
    and the work grows with the copies, not with the pairs among them."""
    rng = random.Random(7)
    base = " ".join(rng.choice(WORDS) for _ in range(100))
    others = [" ".join(rng.choice(WORDS) for _ in range(100)) for _ in range(50)]
    docs = [base, *others, *(edit(base, rng.randint(0, 2), rng) for _ in range(300))]
    finder = NearDupFinder(MinHasher())
    finder.add_packed(*pack(docs))
    result = finder.resolve()
    assert result.dup_of[:51].tolist() == [-1] * 51
    copies = result.dup_of[51:]
    assert all(ref_jaccard(base, docs[51 + k]) < 0.8 for k in np.flatnonzero(copies < 0))
    assert np.count_nonzero(copies == 0) >= 290
    assert result.verified_pairs <= 2 * len(docs)


@pytest.mark.parametrize("num_perm", [1, 3, 4, 5, 128, 130])
def test_min_hash_is_the_minimum_of_each_permutation(num_perm: int) -> None:
    """The four-at-a-time kernel gives exactly min over shingles of (a·x + b mod 2⁶⁴) >> 32."""
    rng = np.random.default_rng(num_perm)
    a = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    for count in (0, 1, 7, 150):
        values = rng.integers(0, 2**63, size=max(count, 1), dtype=np.uint64)
        sig = np.zeros(num_perm, dtype=np.uint32)
        kernels._min_hash(values, count, a, b, sig)
        expected = np.full(num_perm, 0xFFFFFFFF, dtype=np.uint64)
        if count:
            products = a[:, None] * values[None, :count] + b[:, None]
            expected = (products >> np.uint64(32)).min(axis=1)
        assert sig.tolist() == expected.tolist()
