"""The contamination index and checker: each method, persistence, incremental updates."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from tuneloop.contamination.check import Checker, Match, kept_gram_counts, strongest
from tuneloop.contamination.index import IndexSettings, build_index
from tuneloop.contamination.persist import load_index, save_index
from tuneloop.workspace import current_version

RNG = random.Random(7)
VOCAB = [f"tok{i}" for i in range(3000)]


def sentence(n: int) -> str:
    return " ".join(RNG.choice(VOCAB) for _ in range(n))


EVAL = {f"e{i}": sentence(60) for i in range(50)}
EVAL["e-canary"] = sentence(30) + " TUNELOOP-CANARY-0a1b2c3d4e"
IDS, TEXTS = list(EVAL), list(EVAL.values())


def changed(text: str, k: int) -> str:
    words = text.split()
    for i in range(k):
        words[i * 7] = "zzz"
    return " ".join(words)


CASES = [
    (
        "exact copy, other case and punctuation",
        EVAL["e3"].upper().replace(" ", ", "),
        "e3",
        "exact",
    ),
    ("two words changed", changed(EVAL["e4"], 2), "e4", "minhash"),
    (
        "pasted inside a long text",
        sentence(300) + " " + EVAL["e5"] + " " + sentence(300),
        "e5",
        "ngram",
    ),
    ("carries the canary", "note: tuneloop-canary-0A1B2C3D4E leaked", "e-canary", "canary"),
    ("unrelated", sentence(80), None, None),
    ("shares a 13-gram only", " ".join(EVAL["e6"].split()[:13]) + " " + sentence(80), None, None),
]


@pytest.fixture(scope="module")
def checker() -> Checker:
    return Checker(build_index(IndexSettings(), IDS, TEXTS, "v1"))


@pytest.mark.parametrize(("name", "text", "eval_id", "method"), CASES, ids=[c[0] for c in CASES])
def test_each_method(
    checker: Checker, name: str, text: str, eval_id: str | None, method: str | None
) -> None:
    best = strongest(checker.check(text))
    if eval_id is None:
        assert best is None
    else:
        assert best is not None and (best.eval_id, best.method) == (eval_id, method)


def test_minhash_scores_are_exact_jaccard(checker: Checker) -> None:
    matches = [m for m in checker.check(changed(EVAL["e4"], 2)) if m.method == "minhash"]
    assert matches and all(m.score >= 0.8 for m in matches)
    assert not [m for m in checker.check(changed(EVAL["e4"], 9)) if m.method == "minhash"]


def test_batch_equals_one_by_one(checker: Checker) -> None:
    """Every method but ``contains``, which by design ignores text that more than
    ``common_records`` records of a batch share (tests/test_containment.py)."""
    texts = [c[1] for c in CASES] * 3

    def others(found: list[Match]) -> list[Match]:
        return [m for m in found if m.method != "contains"]

    assert [others(f) for f in checker.check_batch(texts)] == [
        others(checker.check(t)) for t in texts
    ]


def test_incremental_extend_equals_full_build() -> None:
    settings = IndexSettings()
    full = build_index(settings, IDS, TEXTS, "v2")
    grown = build_index(settings, IDS[:20], TEXTS[:20], "v1")
    grown.extend(IDS[20:], TEXTS[20:], "v2")
    probes = [c[1] for c in CASES] + [changed(t, 1) for t in TEXTS[15:30]]
    assert Checker(grown).check_batch(probes) == Checker(full).check_batch(probes)


def test_persisted_index_round_trips(tmp_path: Path, checker: Checker) -> None:
    save_index(checker.index, tmp_path)
    assert current_version(tmp_path) == "v1"
    loaded = load_index(tmp_path)
    assert loaded.item_ids == checker.index.item_ids
    probes = [c[1] for c in CASES]
    assert Checker(loaded).check_batch(probes) == checker.check_batch(probes)


def test_index_holds_no_eval_text(tmp_path: Path, checker: Checker) -> None:
    save_index(checker.index, tmp_path)
    blob = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    for text in TEXTS:
        for word in text.split()[:3]:
            assert word.encode() not in blob


def test_strongest_prefers_method_then_score() -> None:
    found = [Match("a", "ngram", 0.9), Match("b", "minhash", 0.81), Match("c", "minhash", 0.95)]
    assert strongest(found) == Match("c", "minhash", 0.95)
    assert strongest([]) is None


class FakeEmbedder:
    """Maps a text to a fixed direction by its first word: paraphrases share the first word."""

    def embed(self, texts: list[str]) -> np.ndarray:  # type: ignore[type-arg]
        out = np.zeros((len(texts), 8), dtype=np.float32)
        for k, t in enumerate(texts):
            out[k, {"alpha": 0, "beta": 1}.get(t.split()[0], 7)] = 1.0
        return out


def test_semantic_method_reports_cosine() -> None:
    emb = FakeEmbedder()
    texts = ["alpha one two three", "beta four five six"]
    index = build_index(IndexSettings(), ["a", "b"], texts, "v", (), emb.embed(texts))
    found = Checker(index, emb).check("alpha completely different words")
    assert strongest(found) == Match("a", "semantic", 1.0)


def test_real_embedder_catches_a_reworded_benchmark_question() -> None:
    semantic = pytest.importorskip("tuneloop.contamination.semantic")
    pytest.importorskip("sentence_transformers")
    embedder = semantic.MiniLMEmbedder()
    items = [
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
        "in May. How many clips did Natalia sell altogether in April and May?",
        "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of "
        "babysitting. How much did she earn?",
    ]
    index = build_index(IndexSettings(), ["q1", "q2"], items, "v", (), embedder.embed(items))
    checker = Checker(index, embedder)
    reworded = (
        "In April Natalia sold 48 clips to her friends; in May she sold half that number. "
        "What is the total number of clips she sold over the two months?"
    )
    unrelated = "Tom bought 3 apples for $2 each and 2 pears for $1 each. How much did he spend?"
    found = checker.check_batch([reworded, unrelated])
    assert [(m.eval_id, m.method) for m in found[0]] == [("q1", "semantic")]
    assert found[0][0].score >= 0.9
    assert found[1] == []


@pytest.mark.parametrize(
    ("keys", "items", "common", "expected"),
    [
        ([1, 1, 1, 2, 3], [0, 1, 2, 0, 1], 2, [1, 1, 0]),  # gram 1 is in 3 items: a template
        ([1, 1, 1, 2, 3], [0, 1, 2, 0, 1], 3, [2, 2, 1]),
        ([], [], 10, [0, 0]),
    ],
)
def test_kept_gram_counts_leave_templates_out(
    keys: list[int], items: list[int], common: int, expected: list[int]
) -> None:
    got = kept_gram_counts(np.array(keys, dtype=np.uint64), np.array(items, dtype=np.int64),
                           len(expected), common)  # fmt: skip
    assert got.tolist() == expected


def test_a_template_shared_by_many_items_is_no_evidence() -> None:
    """Twelve eval items open with the same 40-word notice: a record holding only the notice
    covers 85% of each item's 13-grams, yet it leaks none of them; a real copy still matches."""
    notice = sentence(40)
    evals = {f"t{i}": f"{notice} {sentence(5)}" for i in range(12)}
    checker = Checker(build_index(IndexSettings(), list(evals), list(evals.values()), "v"))
    assert checker.common_gram_items < len(evals)
    assert not [m for m in checker.check(f"{sentence(20)} {notice}") if m.method == "ngram"]
    pasted = f"{sentence(200)} {evals['t3']} {sentence(200)}"
    assert {(m.eval_id, m.method) for m in checker.check(pasted)} >= {("t3", "ngram")}
