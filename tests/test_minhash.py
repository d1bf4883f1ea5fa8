"""MinHash, LSH banding and near-duplicate resolution against a plain-Python reference."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given
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
