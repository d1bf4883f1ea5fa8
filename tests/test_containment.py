"""The ``contains`` check: an eval item's prompt or answer found inside a longer record."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuneloop.contamination.check import Checker, strongest
from tuneloop.contamination.fields import ItemFields, fields_of
from tuneloop.contamination.hashing import containment_text
from tuneloop.contamination.index import IndexSettings, build_index
from tuneloop.contamination.persist import StaleIndexError, load_index, save_index
from tuneloop.records import record_from_obj
from tuneloop.textnorm import normalize

RNG = random.Random(3)
VOCAB = ["".join(RNG.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(7)) for _ in range(5000)]


def words(n: int) -> str:
    return " ".join(RNG.choice(VOCAB) for _ in range(n))


QUESTIONS = {f"q{i}": f"Item {i}: {words(30)} costs 1000 dollars, how much?" for i in range(40)}
ANSWERS = {k: f"{words(60)} so the total is 2500." for k in QUESTIONS}
IDS = list(QUESTIONS)
TEXTS = [f"{QUESTIONS[k]}\n{ANSWERS[k]}" for k in IDS]
FIELDS = [ItemFields(QUESTIONS[k], ANSWERS[k]) for k in IDS]

CASES = [
    ("homework paste", f"pls help with my homework: {QUESTIONS['q3']} thanks", "q3", "prompt"),
    ("lowercased, long chat around", f"{words(80)} {QUESTIONS['q4'].lower()} {words(80)}", "q4",
     "prompt"),
    ("numbers reformatted", f"Q: {QUESTIONS['q5'].replace('1000', '1,000')} help", "q5", "prompt"),
    ("answer alone", f"is this right? {ANSWERS['q6']}", "q6", "answer"),
    ("whole item with wrappers", f"Question: {QUESTIONS['q7']}\nAnswer: {ANSWERS['q7']}", "q7",
     "item"),
    ("one word swapped", "help: " + QUESTIONS["q8"].replace(QUESTIONS["q8"].split()[9], "zz"),
     "q8", "prompt"),
    ("half the question", " ".join(QUESTIONS["q9"].split()[:18]) + " " + words(40), None, None),
    ("unrelated", words(120), None, None),
]  # fmt: skip


@pytest.fixture(scope="module")
def checker() -> Checker:
    return Checker(build_index(IndexSettings(), IDS, TEXTS, "v1", fields=FIELDS))


@pytest.mark.parametrize(("name", "text", "eval_id", "field"), CASES, ids=[c[0] for c in CASES])
def test_contains_names_the_field(
    checker: Checker, name: str, text: str, eval_id: str | None, field: str | None
) -> None:
    found = [m for m in checker.check(text) if m.method == "contains"]
    if eval_id is None:
        assert found == []
    else:
        assert [(m.eval_id, m.field) for m in found] == [(eval_id, field)]
        assert 0.8 <= found[0].score <= 1.0


def test_question_alone_was_missed_by_the_older_methods(checker: Checker) -> None:
    matches = checker.check(CASES[0][1])
    assert {m.method for m in matches} == {"contains"}
    assert strongest(matches) is not None and strongest(matches).evidence() == {  # type: ignore[union-attr]
        "eval_id": "q3", "method": "contains", "score": 1.0, "field": "prompt"}  # fmt: skip


def test_batch_equals_one_by_one(checker: Checker) -> None:
    texts = [c[1] for c in CASES]
    assert checker.check_batch(texts) == [checker.check(t) for t in texts]


def test_incremental_extend_equals_full_build() -> None:
    full = build_index(IndexSettings(), IDS, TEXTS, "v2", fields=FIELDS)
    grown = build_index(IndexSettings(), IDS[:15], TEXTS[:15], "v1", fields=FIELDS[:15])
    grown.extend(IDS[15:], TEXTS[15:], "v2", fields=FIELDS[15:])
    probes = [c[1] for c in CASES]
    assert Checker(grown).check_batch(probes) == Checker(full).check_batch(probes)


def test_persisted_units_round_trip_and_old_format_is_refused(
    tmp_path: Path, checker: Checker
) -> None:
    folder = save_index(checker.index, tmp_path)
    probes = [c[1] for c in CASES]
    assert Checker(load_index(tmp_path)).check_batch(probes) == checker.check_batch(probes)
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "format": 1}))
    with pytest.raises(StaleIndexError, match="rebuilt"):
        load_index(tmp_path)


# --- templates are not leaks -------------------------------------------------------------------

NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana", "Ivo", "Jae", "Kai", "Lea"]
CANNED = (
    "{n}, thanks for reaching out. Your card will work abroad; please keep mobile alerts on "
    "so you can confirm any flagged purchase quickly and let us know if anything changes."
)
ASK = "Hello, please add a travel notice to my account, I will be in {c} for {d} days."


def ticket(i: int, country: str) -> dict[str, object]:
    return {"id": f"t{i}", "prompt": ASK.format(c=country, d=3 + i % 9),
            "completion": CANNED.format(n=NAMES[i % len(NAMES)])}  # fmt: skip


@pytest.mark.parametrize(("n_evals", "n_traffic"), [(30, 60), (3, 1), (3, 3)])
def test_templated_items_and_traffic_are_not_flagged(n_evals: int, n_traffic: int) -> None:
    """A canned reply three eval items share is a template, even for a single record (the
    demo's eval bucket holds each canned reply a few times, with other names)."""
    evals = [record_from_obj(ticket(i, f"Country{i}")) for i in range(n_evals)]
    index = build_index(IndexSettings(), [r.id for r in evals], [r.content_text for r in evals],
                        "v", fields=[fields_of(r) for r in evals])  # fmt: skip
    traffic = [record_from_obj(ticket(100 + i, f"Land{i}")).content_text for i in range(n_traffic)]
    found = Checker(index).check_batch(traffic)
    assert [m for f in found for m in f if m.method == "contains"] == []


def test_a_leak_inside_templated_traffic_is_still_found() -> None:
    evals = [record_from_obj(ticket(i, f"Country{i}")) for i in range(30)]
    item = {"id": "real", "prompt": QUESTIONS["q1"], "completion": ANSWERS["q1"]}
    evals.append(record_from_obj(item))
    index = build_index(IndexSettings(), [r.id for r in evals], [r.content_text for r in evals],
                        "v", fields=[fields_of(r) for r in evals])  # fmt: skip
    traffic = [record_from_obj(ticket(100 + i, "Peru")).content_text for i in range(40)]
    traffic.append(f"can you check this: {QUESTIONS['q1']}")
    found = Checker(index).check_batch(traffic)
    assert [(m.eval_id, m.field) for m in found[-1] if m.method == "contains"] == [
        ("real", "prompt")
    ]
    assert not any(found[:-1])


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1000, max_value=10**9), st.sampled_from([",", ".", "'", "_"]))
def test_number_formatting_does_not_change_containment_text(n: int, sep: str) -> None:
    grouped = f"{n:,}".replace(",", sep)

    def words_of(text: str) -> str:
        return normalize(containment_text(text))

    assert words_of(f"pay ${grouped}.") == words_of(f"pay {n} now")[:-4]
    assert words_of(f"a {n}mile trip") == words_of(f"a {n}-mile trip")
    assert words_of(f"see word{n}") != words_of("see word1")


# --- span: a contiguous stretch of a unit, quoted verbatim ----------------------------------------


def choices() -> str:
    return "\n".join(f"{letter}. {words(8)}" for letter in "ABCD")


MC = {f"m{i}": f"{words(24)}?\n{choices()}" for i in range(10)}  # the question ~40% of it


@pytest.fixture(scope="module")
def text_items() -> Checker:
    """Items held as one text each (question and worked answer together), no fields."""
    return Checker(build_index(IndexSettings(), IDS, TEXTS, "v1"))


def test_a_question_pasted_from_a_text_item_is_a_span(text_items: Checker) -> None:
    """The question is ~a third of the item: too little for containment of the whole item,
    enough as one verbatim stretch."""
    found = text_items.check(f"pls help with my homework: {QUESTIONS['q3']} thanks")
    assert [(m.eval_id, m.method, m.field) for m in found] == [("q3", "span", "item")]
    assert 0.25 <= found[0].score < 0.8


@pytest.mark.parametrize("n", [12, 19])
def test_a_stretch_shorter_than_span_words_is_no_evidence(text_items: Checker, n: int) -> None:
    quote = " ".join(QUESTIONS["q4"].split()[3 : 3 + n])
    assert text_items.check(f"{words(40)} {quote} {words(40)}") == []


def test_a_long_quote_of_a_small_share_of_a_long_item_is_not_a_span() -> None:
    long_item = f"{QUESTIONS['q5']}\n{words(400)}"
    index = build_index(IndexSettings(), ["long"], [long_item], "v1")
    quote = " ".join(QUESTIONS["q5"].split())  # ~36 words of ~440
    assert Checker(index).check(f"{words(30)} {quote}") == []


def test_a_multiple_choice_question_pasted_without_its_choices_is_a_span() -> None:
    fields = [ItemFields(q, "B") for q in MC.values()]
    index = build_index(IndexSettings(), list(MC), list(MC.values()), "v1", fields=fields)
    stem = MC["m2"].split("\n")[0]
    found = Checker(index).check(f"quick one: {stem} explain please")
    assert [(m.eval_id, m.method, m.field) for m in found] == [("m2", "span", "prompt")]


def test_a_user_turn_equal_to_an_item_is_exact_despite_the_reply(text_items: Checker) -> None:
    obj = {"id": "r", "messages": [{"role": "user", "content": TEXTS[7]},
                                   {"role": "assistant", "content": words(200)}]}  # fmt: skip
    record = record_from_obj(obj)
    whole = [m.method for m in text_items.check(record.content_text)]
    assert "exact" not in whole
    found = text_items.check_records([record])[0]
    assert strongest(found) is not None and strongest(found).method == "exact"  # type: ignore[union-attr]
    assert len({(m.eval_id, m.method, m.field) for m in found}) == len(found)  # one per kind
