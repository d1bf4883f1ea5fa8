"""Table-driven tests for the curation blocks, plus properties: clean is idempotent, format always
ends with an assistant turn, and the validation split is deterministic with the asked fraction."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tuneloop.curate.base import Drop, DropLog, MapBlock
from tuneloop.curate.clean import CleanBlock, clean_text
from tuneloop.curate.feedback import FeedbackBlock
from tuneloop.curate.format import FormatBlock
from tuneloop.curate.quality import QualityBlock
from tuneloop.curate.split import ValidationSplitBlock, assign_split
from tuneloop.errors import ConfigError
from tuneloop.records import ROLES, Message, Record


def chat(*turns: tuple[str, str], **kw: Any) -> Record:
    return Record(id="r", shape="chat", messages=tuple(Message(r, c) for r, c in turns), **kw)


def comp(prompt: str, completion: str, **kw: Any) -> Record:
    return Record(id="r", shape="completion", prompt=prompt, completion=completion, **kw)


def doc(text: str, **kw: Any) -> Record:
    return Record(id="r", shape="text", text=text, **kw)


def turns(record: Record | Drop) -> list[tuple[str, str]]:
    assert isinstance(record, Record), record
    return [(m.role, m.content) for m in record.messages]


def reason(out: Record | Drop) -> str | None:
    return out.reason if isinstance(out, Drop) else None


QA = (("user", "What is the capital of France?"), ("assistant", "Paris is the capital."))


# --- clean ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a\r\nb\rc", "a\nb\nc"),
        ("a\u2028b\x0cc", "a\nb\nc"),
        ("e\u0301", "é"),  # NFC composes
        ("ﬁ ＡＢ x²", "ﬁ ＡＢ x²"),  # no NFKC: ligatures, full-width, superscripts stay
        ("a\u200bb\u2060c", "abc"),
        ("\ufeffhello", "hello"),
        ("a\x00b\x07c\x7fd", "abcd"),
        ("a\tb", "a\tb"),
        ("a  \nb\t ", "a\nb"),
        ("a\n\n\n\n\n\nb", "a\n\n\nb"),  # at most two blank lines
        ("a\n\n\nb", "a\n\n\nb"),
        ("  \n x \n\n", "x"),
        ("👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧"),  # ZWJ is meaningful, kept
        ("e\u200b\u0301", "é"),  # removal happens before composition
    ],
)
def test_clean_text(raw: str, expected: str) -> None:
    assert clean_text(raw) == expected


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (chat(("user", "hi"), ("assistant", "\u200b ")), "empty_after_clean"),
        (chat(("user", "\x00"), ("assistant", "ok")), "empty_after_clean"),
        (chat(("user", "hi")), "no_assistant_turn"),
        (chat(("system", "be nice"), ("assistant", "ok")), "no_user_turn"),
        (comp(" \r\n ", "answer"), "empty_after_clean"),
        (comp("question", "\ufeff"), "empty_after_clean"),
        (doc("\x00\n\t"), "empty_after_clean"),
        (chat(("system", " "), ("user", "hi"), ("assistant", "yo")), None),  # empty turn is fine
        (doc("fine"), None),
    ],
)
def test_clean_block_verdicts(record: Record, expected: str | None) -> None:
    assert reason(CleanBlock().process(record)) == expected


def test_clean_block_cleans_every_field() -> None:
    out = CleanBlock().process(comp("q\r\n", " a  ", correction="fix\x00ed "))
    assert isinstance(out, Record)
    assert (out.prompt, out.completion, out.correction) == ("q", "a", "fixed")
    blank = CleanBlock().process(doc("t", correction=" \u200b"))
    assert isinstance(blank, Record) and blank.correction is None
    assert json.dumps(CleanBlock().params())


_messy = st.text(
    st.one_of(st.sampled_from(list("\r\n\t \x00\u200b\ufeff\u0301e\u2028\xa0")), st.characters())
)
_roles = st.sampled_from(ROLES)


@st.composite
def records(draw: st.DrawFn) -> Record:
    shape = draw(st.sampled_from(["chat", "completion", "text"]))
    if shape == "chat":
        msgs = draw(st.lists(st.tuples(_roles, _messy), min_size=1, max_size=5))
        return chat(*msgs)
    if shape == "completion":
        return comp(draw(_messy), draw(_messy))
    return doc(draw(_messy))


@given(st.text(st.characters(exclude_categories=())) | _messy)
def test_clean_text_is_idempotent(text: str) -> None:
    once = clean_text(text)
    assert clean_text(once) == once


@given(records())
def test_clean_block_is_idempotent(record: Record) -> None:
    block = CleanBlock()
    once = block.process(record)
    if isinstance(once, Record):
        assert block.process(once) == once


# --- quality -------------------------------------------------------------------------------------

PROSE = "The quick brown fox jumps over the lazy dog near the quiet river bank today."
CAT = "the cat sat on the mat and the cat sat on the rug"
BLOB = "Here is the file: " + base64.b64encode(bytes(range(120))).decode()
Q = QualityBlock()


@pytest.mark.parametrize(
    ("block", "record", "expected", "threshold"),
    [
        (Q, doc("hi there"), "too_short", 3),
        (QualityBlock(max_words=5), doc(PROSE), "too_long", 5),
        (Q, doc("1234 5678 9012 3456 7890 1234 5678"), "non_text", 0.3),
        (Q, doc(BLOB), "long_word", 0.5),
        (Q, doc("buy it now\n" * 5 + "thanks for reading"), "repeated_lines", 0.3),
        (Q, doc("Sorry, I cannot help with that. " * 4 + "Anything else?"), "repeated_ngrams", 0.6),
        (Q, doc("asdfgh jkl qwerty zxcvb asdfgh jkl qwerty zxcvb"), "repeated_text", 2),
        (Q, doc(CAT), None, None),  # one phrase said twice in a sentence is English
        (QualityBlock(max_top_ngram_frac=0.2), doc(CAT), "top_ngram", 0.2),  # Gopher's rule, on
        (Q, doc(PROSE), None, None),
        (Q, chat(("user", "What is 2+2?"), ("assistant", "4")), None, None),  # no ratios
        (Q, doc("我喜欢在周末去公园散步"), None, None),  # CJK counts per character
    ],
)
def test_quality_rules(
    block: QualityBlock, record: Record, expected: str | None, threshold: float | None
) -> None:
    out = block.process(record)
    assert reason(out) == expected
    if isinstance(out, Drop):
        assert out.details["threshold"] == threshold
        assert isinstance(out.details["value"], int | float)
    else:
        assert out is record


def test_quality_settings() -> None:
    assert json.loads(json.dumps(QualityBlock().params()))["min_words"] == 3
    with pytest.raises(ValidationError, match="max_dup_line_frac"):
        QualityBlock(max_dup_line_frac=1.5)
    with pytest.raises(ValidationError, match="min_words"):
        QualityBlock(min_words=10, max_words=5)


# --- feedback ------------------------------------------------------------------------------------

CUT = {"finish_reason": "length"}  # the server stopped at the request's max_tokens


@pytest.mark.parametrize(
    ("block", "record", "expected"),
    [
        (FeedbackBlock(), chat(*QA, thumbs="down"), "thumbs_down"),
        (FeedbackBlock(), chat(*QA, thumbs="down", correction=" "), "thumbs_down"),
        (FeedbackBlock(min_rating=3), chat(*QA, rating=2.0), "low_rating"),
        (FeedbackBlock(min_rating=3), chat(*QA), None),  # no rating: kept
        (FeedbackBlock(min_rating=3), chat(*QA, rating=3.0), None),
        (FeedbackBlock(), chat(*QA, rating=0.0, thumbs="up"), None),
        (FeedbackBlock(min_rating=3), chat(*QA, rating=1.0, correction="Paris."), None),
        (FeedbackBlock(), chat(*QA, thumbs="up", meta=CUT), "cut_at_max_tokens"),
        (FeedbackBlock(), chat(*QA, meta=CUT), "cut_at_max_tokens"),
        (FeedbackBlock(), chat(*QA, thumbs="down", meta=CUT), "thumbs_down"),
        (FeedbackBlock(), chat(*QA, meta=CUT, correction="Paris."), None),  # a whole answer now
        (FeedbackBlock(), chat(*QA, thumbs="up", meta={"finish_reason": "stop"}), None),
        (FeedbackBlock(keep_cut=True), chat(*QA, thumbs="up", meta=CUT), None),
    ],
)
def test_feedback_verdicts(block: FeedbackBlock, record: Record, expected: str | None) -> None:
    assert reason(block.process(record)) == expected


def test_low_rating_details() -> None:
    out = FeedbackBlock(min_rating=3).process(chat(*QA, rating=2.0))
    assert out == Drop("low_rating", {"rating": 2.0, "min_rating": 3})


def test_correction_replaces_the_last_answer() -> None:
    spain = (("user", "And Spain?"), ("assistant", "Lisbon."))
    record = chat(*QA, *spain, thumbs="down", correction="Madrid.")
    out = FeedbackBlock().process(record)
    assert turns(out)[1] == QA[1]
    assert turns(out)[-1] == ("assistant", "Madrid.")
    assert isinstance(out, Record) and out.meta == {"corrected": True}
    fixed = FeedbackBlock().process(comp("2+2?", "5", correction="4"))
    assert isinstance(fixed, Record) and fixed.completion == "4" and fixed.meta["corrected"]
    text = doc("a document", correction="whatever")
    assert FeedbackBlock().process(text) is text


# --- format --------------------------------------------------------------------------------------


F, FS = FormatBlock(), FormatBlock(system_prompt="S")
SAME = (("user", "a"), ("user", "b"), ("assistant", ""), ("assistant", "c"), ("user", " "))


@pytest.mark.parametrize(
    ("block", "record", "expected"),
    [
        (F, comp("Q", "A"), [("user", "Q"), ("assistant", "A")]),
        (FS, comp("Q", "A"), [("system", "S"), ("user", "Q"), ("assistant", "A")]),
        (FS, chat(("system", "X"), *QA), [("system", "X"), *QA]),
        (
            F,
            chat(*SAME, ("assistant", "d")),
            [("user", "a\n\nb"), ("assistant", "c\n\nd")],
        ),
        (F, chat(*QA, ("user", "more?")), "ends_without_assistant"),
        (F, chat(("user", "q"), ("assistant", " ")), "ends_without_assistant"),
        (F, comp("Q", ""), "ends_without_assistant"),
        (FormatBlock(text_as="drop"), doc("a doc"), "unsupported_shape"),
    ],
)
def test_format(block: FormatBlock, record: Record, expected: str | list[tuple[str, str]]) -> None:
    out = block.process(record)
    if isinstance(expected, str):
        assert reason(out) == expected
    else:
        assert isinstance(out, Record) and out.shape == "chat" and out.prompt is None
        assert turns(out) == expected


def test_format_keeps_text_and_checks_settings() -> None:
    text = doc("a doc")
    assert FormatBlock().process(text) is text
    with pytest.raises(ConfigError, match="text_as"):
        FormatBlock(text_as="json")  # type: ignore[arg-type]
    assert json.dumps(FormatBlock(system_prompt="S").params())


@given(records(), st.none() | st.just("You are helpful."))
def test_format_always_ends_with_assistant(record: Record, system: str | None) -> None:
    out = FormatBlock(system_prompt=system).process(record)
    if isinstance(out, Record) and out.shape == "chat":
        assert out.messages[-1].role == "assistant" and out.messages[-1].content.strip()
        assert all(a.role != b.role for a, b in zip(out.messages, out.messages[1:], strict=False))
    else:
        assert isinstance(out, Drop) or out.shape == "text"


# --- split ---------------------------------------------------------------------------------------


@given(st.text(), st.text(), st.floats(0, 1))
def test_split_is_deterministic(key: str, seed: str, fraction: float) -> None:
    assert assign_split(key, fraction, seed) == assign_split(key, fraction, seed)


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.5])
def test_split_fraction_over_10k_keys(fraction: float) -> None:
    held = sum(assign_split(f"record:{i}", fraction, "s") == "validation" for i in range(10_000))
    assert abs(held / 10_000 - fraction) < 0.01
    assert assign_split("k", 0.0, "s") == "train"


def run_block(block: MapBlock, records: list[Record]) -> tuple[list[Record], DropLog]:
    log = DropLog()
    return list(block.run(records, log)), log


def test_split_keeps_conversations_whole() -> None:
    recs = [
        Record(id=f"r{i}", shape="text", text="t", conversation_id=f"c{i % 50}") for i in range(500)
    ]
    out, log = run_block(ValidationSplitBlock(fraction=0.3), recs)
    sides: dict[str | None, set[str]] = {}
    for r in out:
        sides.setdefault(r.conversation_id, set()).add(r.meta["split"])
    assert all(len(s) == 1 for s in sides.values())
    assert 0 < sum(s == {"validation"} for s in sides.values()) < 50
    assert log.seen["split"] == log.kept["split"] == 500 and not log.counts


@pytest.mark.parametrize(
    ("groups", "min_validation", "held"), [(1, 1, 0), (2, 1, 1), (3, 1, 1), (4, 3, 3), (3, 0, 0)]
)
def test_split_min_validation(groups: int, min_validation: int, held: int) -> None:
    recs = [doc("t", user_id=f"u{i}") for i in range(groups)]
    block = ValidationSplitBlock(fraction=0.001, seed="x", min_validation=min_validation)
    out, _ = run_block(block, recs)
    assert sum(r.meta["split"] == "validation" for r in out) == held
    assert out == run_block(block, recs)[0]  # deterministic


def test_split_process_and_settings() -> None:
    out = ValidationSplitBlock(fraction=0.5).process(doc("t", meta={"k": 1}))
    assert out.meta["k"] == 1 and out.meta["split"] in ("train", "validation")
    assert json.dumps(ValidationSplitBlock().params())
    with pytest.raises(ConfigError, match="fraction"):
        ValidationSplitBlock(fraction=1.0)


@settings(max_examples=50)
@given(st.lists(st.text(min_size=1), max_size=20))
def test_split_block_is_order_independent(keys: list[str]) -> None:
    recs = [doc("t", conversation_id=k) for k in keys]
    block = ValidationSplitBlock(fraction=0.1)
    forward = {r.conversation_id: r.meta["split"] for r in run_block(block, recs)[0]}
    backward = {r.conversation_id: r.meta["split"] for r in run_block(block, recs[::-1])[0]}
    assert forward == backward
