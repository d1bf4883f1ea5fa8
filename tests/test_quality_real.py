"""The quality block keeps real-looking short answers and still drops every kind of junk.

The kept rows are shaped like records of public sets (GSM8K solutions with calculator notes,
MMLU choice lists, BIG-Bench sums, Alpaca edits that quote their input), each a false positive
of an earlier rule; the dropped rows are the junk the demo plants (an empty reply is the clean
block's) and loops a model produces.
"""

from __future__ import annotations

import base64
import random

import pytest

from tuneloop.curate.base import Drop
from tuneloop.curate.quality import QualityBlock, echo_count, repeated_ngram_frac, text_frac
from tuneloop.records import Message, Record

Q = QualityBlock()


def qa(question: str, answer: str) -> Record:
    turns = (Message("user", question), Message("assistant", answer))
    return Record(id="r", shape="chat", messages=turns)


KEPT = {
    "digits of pi": qa(
        "Sam memorized six more digits of pi than Carlos memorized. Mina memorized six times as "
        "many digits of pi as Carlos memorized. If Mina memorized 24 digits of pi, how many "
        "digits did Sam memorize?",
        "Carlos memorized 24/6=<<24/6=4>>4 digits of pi.\n"
        "Sam memorized 4+6=10 digits of pi.\n#### 10",
    ),
    "answer restates the question": qa(
        "Paddington has 40 more goats than Washington. If Washington has 140 goats, how many "
        "goats do they have in total?",
        "If Washington has 140 goats, Washington has 140+40 = <<140+40=180>>180 goats.\n"
        "In total, they have 140+180 = <<140+180=320>>320 goats\n#### 320",
    ),
    "parallel steps": qa(
        "Santana has 7 brothers. 3 have birthdays in March, 1 in October, 1 in November and 2 in "
        "December. How many more presents does she buy in the second half of the year?",
        "Santana has 1 + 1 + 2 = <<1+1+2=4>>4 brothers with birthdays in the second half of the "
        "year.\nShe has 7 brothers - 4 brothers = <<7-4=3>>3 brothers with birthdays in the first "
        "half of the year.\nTherefore, she has to buy 4 - 3 = <<4-3=1>>1 more present in the "
        "second half of the year.\n#### 1",
    ),
    "choice list": qa(
        "Glycolysis is the name given to the pathway involving the conversion of:\n"
        "A. glycogen to glucose-1-phosphate.\nB. glycogen or glucose to fructose.\n"
        "C. glycogen or glucose to pyruvate or lactate.\n"
        "D. glycogen or glucose to pyruvate or acetyl CoA.",
        "Answer: C",
    ),
    "arithmetic": qa("((-1 + 2 + 9 * 5) - (-2 + -4 + -4 * -7)) =", "24"),
    "numbers in a sum": qa("Add. 46,911 + 653,092\nA. 699,903\nB. 700,003\nC. 913,203", "B"),
    "boolean expression": qa("not not False and not not not False is", "False"),
    "quoted input": qa(
        "Rewrite the sentence so that it's in the present tense.\n"
        "She had worked at the company for the past 3 years.",
        "She has worked at the company for the past 3 years.",
    ),
    "one phrase twice in a sentence": qa(
        "Write a sentence.", "the cat sat on the mat and the cat sat on the rug"
    ),
    "short chat": qa("What is 2+2?", "4"),
}


def _mash(rng: random.Random, size: int) -> str:
    rows = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    out = ""
    while len(out) < size:
        row = rng.choice(rows)
        start = rng.randrange(len(row) - 3)
        out += row[start : start + rng.randint(3, 6)]
    return out[:size]


_RNG = random.Random(0)
_BLOB = base64.b64encode(_RNG.randbytes(2_000)).decode()
_LINE = "Your refund has been processed and will arrive in 3-5 business days."
DROPPED = {
    "keyboard mash": (qa(_mash(_RNG, 70), _mash(_RNG, 10)), "too_short"),
    "mash said twice": (
        qa("asdfgh jkl qwerty zxcvb asdfgh jkl qwerty zxcvb", "sdfg hjkl"),
        "repeated_text",
    ),
    "repeated lines": (qa("Where is my refund?", "\n".join([_LINE] * 20)), "repeated_lines"),
    "pasted blob": (
        qa("The app crashes.", f"Screenshot attached:\ndata:image/png;base64,{_BLOB}"),
        "long_word",
    ),
    "number dump": (qa("1234 5678 9012 3456", "7890 1234 5678 9012 3456 7890"), "non_text"),
    "loop after an answer": (
        qa(
            "How do I reset my password?",
            "Open Settings and choose Security. "
            + "Then tap Reset and follow the link we email you. " * 6,
        ),
        "repeated_ngrams",
    ),
    "one-line loop": (
        qa("Can you help?", "I'm sorry, I can't help with that. " * 10),
        "repeated_text",
    ),
    "word loop": (qa("Say something.", "the " * 40), "repeated_text"),
}


@pytest.mark.parametrize("name", list(KEPT))
def test_real_looking_answers_are_kept(name: str) -> None:
    record = KEPT[name]
    assert Q.process(record) is record


@pytest.mark.parametrize("name", list(DROPPED))
def test_junk_is_dropped_with_its_reason(name: str) -> None:
    record, reason = DROPPED[name]
    out = Q.process(record)
    assert isinstance(out, Drop) and out.reason == reason, out


def test_repeated_share_counts_each_word_once() -> None:
    assert repeated_ngram_frac("alpha beta gamma delta epsilon zeta") == 0.0
    assert repeated_ngram_frac("one two three four " * 4) == pytest.approx(0.75)
    assert echo_count("Thanks, I checked. Thanks, I checked!") == 2
    assert echo_count("not not not not True is") == 1


def test_arithmetic_and_grid_rules_count_as_text() -> None:
    assert text_frac("((3 * -3 * 6 + -5) - (-2 + -7 - 7 - -7)) =") == 1.0
    assert text_frac("|1| |5|\n|8|3|4|") < 0.3 < text_frac("Solve the sudoku:\n|1| |5|\n|8|3|4|")
    assert text_frac("1234 5678 9012 3456") == 0.0
