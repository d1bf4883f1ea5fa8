"""The semantic check calibrated per suite: thresholds from each suite's nearest neighbours.

The rule's arithmetic runs on made-up neighbour cosines; the rest runs all-MiniLM-L6-v2 (loaded
once for the module) on two kinds of suite: distinctive word problems of our own, which get a
threshold and catch a reworded copy, and the demo's templated support chats, which are too
templated for any threshold and are left to the lexical checks.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tuneloop.contamination.calibration import SemanticRule, calibrate, update_neighbours
from tuneloop.contamination.check import Checker, strongest
from tuneloop.contamination.fields import ItemFields, fields_of
from tuneloop.contamination.index import (
    ContaminationIndex,
    IndexSettings,
    build_index,
    semantic_rule,
)
from tuneloop.contamination.persist import (
    FORMAT,
    StaleIndexError,
    load_index,
    read_calibration,
    save_index,
)
from tuneloop.records import Record, record_from_obj
from tuneloop.workspace import Workspace

RULE = SemanticRule(floor=0.85, quantile=0.99, margin=0.03, ceiling=0.95)

# --- the rule, on made-up nearest-neighbour cosines ---------------------------------------------

RULE_CASES = [
    ("far apart: the floor", [0.3, 0.4, 0.5, 0.45], 0.85),
    ("benchmark-like: the quantile plus the margin", [0.6] * 50 + [0.84] * 50, 0.87),
    ("templated: above the ceiling, off", [0.9] * 20 + [0.96] * 80, None),
    ("one item alone: the floor", [-1.0], 0.85),
]


@pytest.mark.parametrize(("name", "near", "threshold"), RULE_CASES, ids=[c[0] for c in RULE_CASES])
def test_the_rule(name: str, near: list[float], threshold: float | None) -> None:
    got = calibrate(np.array(near, dtype=np.float32), RULE)
    assert got.threshold == (pytest.approx(threshold) if threshold is not None else None)
    assert got.items == len(near)


DESCRIBE_CASES = [
    ("one item", [-1.0], "threshold 0.850, the floor (1 item with no other question"),
    ("a few", [0.5, 0.6, 0.7], "at the 99th percentile; 3 items are few to calibrate"),
    ("enough", [0.6] * 50, "0.600 at the 99th percentile)"),
]


@pytest.mark.parametrize(
    ("name", "near", "said"), DESCRIBE_CASES, ids=[c[0] for c in DESCRIBE_CASES]
)
def test_a_tiny_suite_is_described_for_what_it_is(name: str, near: list[float], said: str) -> None:
    line = calibrate(np.array(near, dtype=np.float32), RULE).describe("s", RULE)
    assert said in line and "-1.000" not in line


def test_neighbours_grow_incrementally_and_stay_within_suites() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    suites = np.array([k % 3 for k in range(40)], dtype=np.int64)
    whole = update_neighbours(vectors, suites, None, 0, 0.995)
    grown = update_neighbours(vectors[:25], suites[:25], None, 0, 0.995)
    grown = update_neighbours(vectors, suites, grown, 25, 0.995)
    np.testing.assert_allclose(grown, whole, atol=1e-6)
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -1.0)
    sims[suites[:, None] != suites[None, :]] = -1.0
    np.testing.assert_allclose(whole, sims.max(axis=1), atol=1e-6)


AUTO_CASES = [  # (semantic =, extra installed, check on)
    (True, False, True),
    (False, True, False),
    ("auto", True, True),
    ("auto", False, False),
]


@pytest.mark.parametrize(("setting", "installed", "on"), AUTO_CASES)
def test_auto_means_on_where_the_extra_is_installed(
    monkeypatch: pytest.MonkeyPatch, setting: bool | str, installed: bool, on: bool
) -> None:
    from tuneloop.config import ContaminationConfig
    from tuneloop.contamination import semantic

    monkeypatch.setattr(semantic, "available", lambda: installed)
    assert semantic.enabled(ContaminationConfig(semantic=setting)) is on  # type: ignore[arg-type]
    assert ContaminationConfig().semantic == "auto"


def test_copies_are_not_neighbours() -> None:
    """A suite holding some questions twice (as MMLU test does) is not templated for that."""
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(30, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    held_twice = np.concatenate([vectors, vectors[:6]])
    near = update_neighbours(held_twice, np.zeros(36, dtype=np.int64), None, 0, RULE.copy)
    assert float(near.max()) < 0.99
    assert calibrate(near, RULE).threshold == pytest.approx(RULE.floor)


# --- the real model on two kinds of suite -------------------------------------------------------

QUESTIONS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
    "May. How many clips did Natalia sell altogether in April and May?",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
    "How much did she earn?",
    "A bakery bakes 240 loaves of bread each morning and sells three quarters of them before "
    "noon. How many loaves are left for the afternoon?",
    "Omar drives 62 miles to the coast at 31 miles per hour and comes back twice as fast. How "
    "long does the whole trip take?",
    "A garden has 7 rows of tomato plants with 14 plants in each row. Each plant gives 9 "
    "tomatoes. How many tomatoes does the garden give?",
    "Lena reads 18 pages of her novel on weekdays and 40 pages on each day of the weekend. How "
    "many pages does she read in two weeks?",
    "A school orders 35 boxes of pencils with 24 pencils per box and hands them out equally to "
    "12 classes. How many pencils does each class get?",
    "The price of a bicycle drops by 20% in a sale, to $176. What was its price before the sale?",
    "Priya swims 25 lengths of a 50 metre pool every day for 6 days. How many kilometres does "
    "she swim?",
    "A tank holds 900 litres of water and leaks 15 litres an hour. After how many hours is it "
    "one third empty?",
    "Carlos is three times as old as his daughter, and in 12 years he will be twice as old as "
    "she is. How old is Carlos now?",
    "A farmer has 84 sheep and 3 dogs. He sells a quarter of the sheep and buys 9 goats. How "
    "many animals does he have now?",
    "Tickets to the museum cost $14 for adults and $6 for children. A family of 2 adults and 3 "
    "children pays with a $50 note. How much change do they get?",
    "A recipe needs 3 eggs for every 250 grams of flour. How many eggs are needed for 2 "
    "kilograms of flour?",
    "Ming types 45 words a minute and has an essay of 2,700 words to copy. If she takes a "
    "10 minute break halfway, how long does the copying take?",
    "A cinema has 18 rows of 22 seats. On Friday 5 rows were empty and the rest were full. How "
    "many people were at the cinema on Friday?",
]
REWORDED = (
    "In April Natalia sold 48 clips to her friends; in May she sold half that number. What is "
    "the total number of clips she sold over the two months?"
)
UNRELATED = "Tom bought 3 apples for $2 each and 2 pears for $1 each. How much did he spend?"


def support_chats(n: int) -> list[Record]:
    """The demo's generated support traffic: a few intents, each from templates."""
    from tuneloop.demo.generate import clean_traffic

    rows = clean_traffic(5, n, datetime(2026, 1, 5))
    return [record_from_obj({k: v for k, v in r.items() if k != "meta"}) for r in rows]


def question(rid: str, text: str) -> Record:
    return record_from_obj({"id": rid, "prompt": text, "completion": "The answer is 42."})


class Cached:
    """all-MiniLM-L6-v2, each text embedded once for the whole module."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.seen: dict[str, np.ndarray] = {}  # type: ignore[type-arg]

    def embed(self, texts: list[str]) -> np.ndarray:  # type: ignore[type-arg]
        missing = list(dict.fromkeys(t for t in texts if t not in self.seen))
        if missing:
            self.seen.update(zip(missing, self.model.embed(missing), strict=True))
        return np.stack([self.seen[t] for t in texts]).astype(np.float32)


@pytest.fixture(scope="module")
def embedder() -> Cached:
    semantic = pytest.importorskip("tuneloop.contamination.semantic")
    if not semantic.available():
        pytest.skip("the semantic extra is not installed")
    return Cached(semantic.MiniLMEmbedder())


@pytest.fixture(scope="module")
def chats() -> list[Record]:
    """As many support chats as the demo's eval set holds."""
    return support_chats(200)


def index_of(embedder: Any, suites: dict[str, list[Record]]) -> ContaminationIndex:
    records = [r for rs in suites.values() for r in rs]
    names = [name for name, rs in suites.items() for _ in rs]
    texts = [r.content_text for r in records]
    fields = [fields_of(r) for r in records]
    vectors = embedder.embed([f.prompt or t for t, f in zip(texts, fields, strict=True)])
    ids = [r.id for r in records]
    return build_index(IndexSettings(), ids, texts, "v1", (), vectors, fields, names)


@pytest.fixture(scope="module")
def mixed(embedder: Any, chats: list[Record]) -> ContaminationIndex:
    """Two suites in one index: word problems and templated support chats."""
    problems = [question(f"q{k}", q) for k, q in enumerate(QUESTIONS)]
    return index_of(embedder, {"math": problems, "support": chats})


SUITE_CASES = [("math", True), ("support", False)]


@pytest.mark.parametrize(("suite", "on"), SUITE_CASES, ids=[c[0] for c in SUITE_CASES])
def test_each_suite_is_calibrated_or_said_too_templated(
    mixed: ContaminationIndex, suite: str, on: bool
) -> None:
    found = mixed.calibration[suite]
    assert found.on is on
    rule = semantic_rule(mixed.settings)
    if on:
        assert found.threshold is not None and rule.floor <= found.threshold <= rule.ceiling
        assert "on for suite 'math': threshold" in found.describe(suite, rule)
    else:
        assert found.neighbour_quantile + rule.margin > rule.ceiling
        assert "off for suite 'support': too templated" in found.describe(suite, rule)


def test_a_reworded_question_is_caught_in_a_distinctive_suite(
    mixed: ContaminationIndex, embedder: Any
) -> None:
    found = Checker(mixed, embedder).check_batch([REWORDED, UNRELATED])
    best = strongest(found[0])
    assert best is not None and (best.eval_id, best.method) == ("q0", "semantic")
    assert found[1] == []


GENERIC_REPLY = (
    "Sure! Let's work through it step by step. First, read the question carefully and note "
    "what is given and what is asked. Then set up the relationships between the quantities, "
    "solve for the unknown, and check that the result makes sense in context. If you get "
    "stuck, try restating the problem in your own words or drawing a quick sketch of it. "
    "Working with a friend or a tutor also helps: explaining a method out loud is one of the "
    "best ways to find the step you are unsure of, and practice makes the method familiar."
)


@pytest.mark.parametrize("large", [True, False], ids=["large-suite", "small-suite"])
def test_a_reworded_question_in_a_chat_is_caught_by_its_turn_alone_in_a_large_suite(
    mixed: ContaminationIndex, embedder: Any, large: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long generic reply pulls the whole record's embedding away from the question; its
    user turn, embedded alone, still finds it, where the suite is large enough for its
    threshold to hold a short request (here the 16-item suite counts as large or not)."""
    monkeypatch.setattr(Checker, "turn_min_items", len(QUESTIONS) if large else 200)
    turns = [{"role": "user", "content": REWORDED}, {"role": "assistant", "content": GENERIC_REPLY}]
    chat = record_from_obj({"id": "c", "messages": turns})
    checker = Checker(mixed, embedder)
    assert checker.check_batch([chat.content_text]) == [[]]  # the whole record: missed
    found = checker.check_records([chat])[0]
    expected = [("q0", "semantic")] if large else []
    assert [(m.eval_id, m.method) for m in found] == expected


def test_a_templated_suite_flags_nothing_semantically(
    mixed: ContaminationIndex, embedder: Any, chats: list[Record]
) -> None:
    """Other chats of the same intents come close to the suite's items (some above the old
    global threshold of 0.9); the suite is off, so none is compared with its items."""
    traffic = [r.content_text for r in support_chats(300)[:100]]
    nearest = (embedder.embed(traffic) @ mixed.embeddings[len(QUESTIONS) :].T).max(axis=1)
    assert float(np.quantile(nearest, 0.5)) > 0.6
    found = Checker(mixed, embedder).check_batch(traffic)
    assert not [m for f in found for m in f if m.method == "semantic"]
    alone = index_of(embedder, {"support": chats})
    assert Checker(alone, embedder).embedder is None  # nothing on: no record is embedded


def test_thresholds_persist_and_a_stale_index_is_refused(
    mixed: ContaminationIndex, embedder: Any, tmp_path: Path
) -> None:
    save_index(mixed, tmp_path)
    loaded = load_index(tmp_path)
    assert loaded.calibration == mixed.calibration
    assert read_calibration(tmp_path) == mixed.calibration
    np.testing.assert_array_equal(loaded.semantic_cutoffs(), mixed.semantic_cutoffs())
    probes = [REWORDED, UNRELATED]
    assert Checker(loaded, embedder).check_batch(probes) == Checker(mixed, embedder).check_batch(
        probes
    )
    meta_path = tmp_path / "versions" / "v1" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "format": FORMAT - 1}))
    with pytest.raises(StaleIndexError, match="per-suite thresholds"):
        load_index(tmp_path)
    assert read_calibration(tmp_path) is None


def test_growing_a_suite_recalibrates_it(embedder: Any) -> None:
    problems = [question(f"q{k}", q) for k, q in enumerate(QUESTIONS)]
    whole = index_of(embedder, {"math": problems})
    grown = index_of(embedder, {"math": problems[:6]})
    rest = problems[6:]
    texts = [r.content_text for r in rest]
    vectors = embedder.embed([fields_of(r).prompt for r in rest])
    fields = [ItemFields(fields_of(r).prompt, fields_of(r).answer) for r in rest]
    grown.extend([r.id for r in rest], texts, "v2", (), vectors, fields, ["math"] * len(rest))
    assert grown.calibration["math"].items == len(QUESTIONS)
    assert grown.calibration["math"].neighbour_quantile == pytest.approx(
        whole.calibration["math"].neighbour_quantile, abs=1e-3
    )


# --- the workspace: `evalset add` calibrates, and a stale index is rebuilt ----------------------


def test_evalset_add_calibrates_and_a_stale_index_rebuilds(
    workspace: Workspace, embedder: Any, chats: list[Record]
) -> None:
    from tuneloop.evalside.intake import add_eval_items, load_or_rebuild
    from tuneloop.evalside.store import EvalStore

    problems = [(question(f"q{k}", q), None) for k, q in enumerate(QUESTIONS)]
    added = add_eval_items(workspace, problems, "math", [])
    assert added.semantic is not None and added.semantic.on
    assert added.semantic_line.startswith("semantic check on for suite 'math': threshold")
    version = workspace.index_version()
    assert version is not None
    meta_path = workspace.index_dir / "versions" / version[:16] / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "format": 2}))
    with EvalStore(workspace.eval_store_path) as store:
        rebuilt = load_or_rebuild(workspace, store)
    assert json.loads(meta_path.read_text())["format"] == FORMAT  # rewritten, not rebuilt again
    assert rebuilt.calibration == load_index(workspace.index_dir).calibration
    found = Checker(rebuilt, embedder).check(REWORDED)
    assert [(m.eval_id, m.method) for m in found] == [("q0", "semantic")]
    added = add_eval_items(workspace, [(r, None) for r in chats], "support", [])
    assert added.semantic is not None and not added.semantic.on
    assert added.semantic_line.startswith("semantic check off for suite 'support': too templated")
    calibration = read_calibration(workspace.index_dir)
    assert calibration is not None
    assert {k: c.on for k, c in calibration.items()} == {"math": True, "support": False}
