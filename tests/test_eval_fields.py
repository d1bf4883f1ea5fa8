"""Field accuracy on JSON answers: complete, cut off mid-answer, wrong, missing, not JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuneloop.evalside.fields import answer_fields, field_accuracy, reference_fields
from tuneloop.evalside.metrics import score_text

NAMES = ("intent", "priority")
REF = json.dumps({"intent": "card_lost", "priority": "high", "reply": "We blocked it."})

CASES = [
    ("whole object, both right", REF, 1.0),
    ("cut off after the fields", '{"intent": "card_lost", "priority": "high", "reply": "W', 1.0),
    ("cut off inside the second", '{"intent": "card_lost", "prio', 0.5),
    ("one wrong", '{"intent": "card_lost", "priority": "low"}', 0.5),
    ("case and spaces do not count", '{ "intent" : "Card_Lost", "priority":"HIGH." }', 1.0),
    ("prose around a ticket", 'Filed: {"priority": "high", "intent": "card_lost"} thanks', 1.0),
    ("no ticket at all", "I am sorry to hear that, please call us.", 0.0),
    ("a field named only in the reply", '{"reply": "your priority is high"}', 0.0),
    ("empty answer", "", 0.0),
]


@pytest.mark.parametrize(("case", "answer", "expected"), CASES, ids=[c[0] for c in CASES])
def test_field_accuracy(case: str, answer: str, expected: float) -> None:
    assert field_accuracy(answer, REF, NAMES) == expected


@pytest.mark.parametrize(
    "reference",
    ["Paris", '["intent", "priority"]', '{"reply": "no fields here"}', '{"intent": {"a": 1}}'],
)
def test_references_without_fields_get_no_score(reference: str) -> None:
    assert field_accuracy(REF, reference, NAMES) is None
    assert "field_acc" not in score_text(REF, reference, NAMES)


def test_only_the_references_fields_count() -> None:
    ref = json.dumps({"intent": "card_lost"})  # no priority in this reference
    assert field_accuracy('{"intent": "card_lost", "priority": "low"}', ref, NAMES) == 1.0


def test_scalars_compare_as_text() -> None:
    ref = json.dumps({"amount": 12, "urgent": True, "note": None})
    assert reference_fields(ref, ["amount", "urgent", "note"]) == {
        "amount": "12", "urgent": "true", "note": "null"
    }  # fmt: skip
    assert field_accuracy('{"amount": 12, "urgent": true, "note": null', ref,
                          ["amount", "urgent", "note"]) == 1.0  # fmt: skip


def test_escaped_quotes_are_read() -> None:
    assert answer_fields('{"intent": "say \\"hi\\"", "x', ["intent"]) == {"intent": 'say "hi"'}


def test_score_text_adds_field_acc_only_when_asked() -> None:
    assert "field_acc" not in score_text(REF, REF)
    assert score_text(REF, REF, NAMES)["field_acc"] == 1.0


VALUES = st.text(alphabet="abcdefghij_ ", min_size=1, max_size=12)


@given(st.dictionaries(st.sampled_from(["intent", "priority", "department"]), VALUES, min_size=1),
       st.integers(min_value=0, max_value=200))  # fmt: skip
def test_identical_answers_score_one_and_any_cut_stays_in_range(
    ticket: dict[str, str], cut: int
) -> None:
    text = json.dumps(ticket)
    names = ["intent", "priority", "department"]
    assert field_accuracy(text, text, names) == 1.0
    score = field_accuracy(text[:cut], text, names)
    assert score is not None and 0.0 <= score <= 1.0
