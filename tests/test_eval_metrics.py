"""Text metrics and the refusal detector: tables of known answers, and properties for any text."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuneloop.evalside.metrics import (
    chrf,
    exact_match,
    is_refusal,
    lcs_length,
    perplexity,
    rouge_l,
    score_text,
    token_f1,
)
from tuneloop.evalside.suites import safety_suite

EXACT = [
    ("Paris", "paris", 1.0),
    ("Paris.", "  PARIS ", 1.0),
    ("Paris", "Paris, France", 0.0),
    ("", "", 1.0),
    ("", "x", 0.0),
]
F1 = [
    ("the cat sat", "the cat sat", 1.0),
    ("cat the sat", "the cat sat", 1.0),  # order does not matter to a bag of words
    ("the cat", "the cat sat on the mat", 2 * 2 / (2 + 6)),
    ("a a b", "a b b", 2 * 2 / 6),  # repeats count once per match
    ("dog", "cat", 0.0),
    ("?", "!", 1.0),  # both normalize to nothing: agree
    ("", "cat", 0.0),
]
ROUGE = [
    ("the cat sat", "the cat sat", 1.0),
    ("cat the sat", "the cat sat", 2 * 2 / 6),  # LCS "cat sat" or "the sat": 2 of 3
    ("the cat", "the cat sat on the mat", 2 * 2 / 8),
    ("dog", "cat", 0.0),
]
LCS = [("abcbdab", "bdcaba", 4), ("", "abc", 0), ("abc", "abc", 3), ("abc", "def", 0)]
REFUSALS = [
    ("I can't help with that.", True),
    ("I’m not able to assist with this request.", True),  # curly apostrophe
    ("Sorry, but I won't write that.", True),
    ("As an AI, I cannot provide instructions for that.", True),
    ("i am unable to do that", True),
    ("I cannot stress enough how useful this is. Run kill -9.", True),  # a known false positive
    ("Use `kill -9 PID`. I can't promise it works on Windows.", False),  # not the first sentence
    ("Run `kill PID` to stop it.", False),
    ("I'm sorry to hear your card was lost. Here is how to block it.", False),
    ("", False),
]
TEXT = st.text(max_size=40)
WORDY = st.lists(st.sampled_from(["a", "b", "c", "Cat", "dog", "x!", "1"]), max_size=8).map(
    " ".join
)
METRICS = [exact_match, token_f1, rouge_l, chrf]


@pytest.mark.parametrize(("pred", "ref", "want"), EXACT)
def test_exact_match(pred: str, ref: str, want: float) -> None:
    assert exact_match(pred, ref) == want


@pytest.mark.parametrize(("pred", "ref", "want"), F1)
def test_token_f1(pred: str, ref: str, want: float) -> None:
    assert token_f1(pred, ref) == pytest.approx(want)


@pytest.mark.parametrize(("pred", "ref", "want"), ROUGE)
def test_rouge_l(pred: str, ref: str, want: float) -> None:
    assert rouge_l(pred, ref) == pytest.approx(want)


@pytest.mark.parametrize(("a", "b", "want"), LCS)
def test_lcs_length(a: str, b: str, want: int) -> None:
    assert lcs_length(list(a), list(b)) == want == lcs_length(list(b), list(a))


def test_chrf_known_values() -> None:
    assert chrf("hello world", "hello world") == 1.0
    assert chrf("a b", "ab") == 1.0  # chrF ignores whitespace
    assert chrf("  ", "") == 1.0
    assert chrf("x", "") == 0.0
    assert 0.0 < chrf("the cat sat", "the cat sat down") < 1.0


@pytest.mark.parametrize(("text", "want"), REFUSALS)
def test_is_refusal(text: str, want: bool) -> None:
    assert is_refusal(text) is want


def test_shipped_safety_references_match_their_expectation() -> None:
    suite = safety_suite()
    assert len(suite.items) == 30
    assert sum(i.expected == "refuse" for i in suite.items) == 15
    assert len({i.id for i in suite.items}) == 30
    for item in suite.items:
        assert is_refusal(item.reference) is (item.expected == "refuse"), item.id


def test_score_text_and_perplexity() -> None:
    assert score_text("Paris", "Paris") == {
        "exact_match": 1.0,
        "token_f1": 1.0,
        "rouge_l": 1.0,
        "chrf": 1.0,
    }
    assert perplexity(0.0) == 1.0
    assert perplexity(1e6) == math.inf


@given(TEXT, TEXT)
def test_every_metric_is_in_unit_interval(pred: str, ref: str) -> None:
    for metric in METRICS:
        assert 0.0 <= metric(pred, ref) <= 1.0


@given(TEXT)
def test_identical_texts_score_one(text: str) -> None:
    for metric in METRICS:
        assert metric(text, text) == 1.0


@given(WORDY, WORDY)
def test_word_metrics_are_symmetric(a: str, b: str) -> None:
    for metric in (exact_match, token_f1, rouge_l):
        assert metric(a, b) == pytest.approx(metric(b, a))


@given(WORDY, WORDY)
def test_rouge_never_exceeds_token_f1(a: str, b: str) -> None:
    # The LCS is a common sub-multiset, so ordered overlap can only be smaller.
    assert rouge_l(a, b) <= token_f1(a, b) + 1e-12


@given(TEXT)
def test_is_refusal_never_raises(text: str) -> None:
    assert isinstance(is_refusal(text), bool)
