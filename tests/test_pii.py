"""PII redaction: what each rule catches and must not catch, numbering, the block, properties."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuneloop.curate.base import Drop, DropLog
from tuneloop.curate.pii import (
    Finding,
    PIIRedactBlock,
    PresidioDetector,
    RedactionState,
    RegexDetector,
    detect,
    redact,
)
from tuneloop.errors import ConfigError
from tuneloop.records import Message, Record, record_from_obj

DETECTORS = [RegexDetector()]
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x\n-----END RSA PRIVATE KEY-----"

# (kind, text, the value that must be found); each is checked in the middle of a sentence.
POSITIVE = [
    ("EMAIL", "john.doe+tag@mail.example.co.uk"),
    ("PHONE", "+44 20 7946 0958"),
    ("PHONE", "+1 (415) 555-0132"),
    ("PHONE", "(555) 123-4567"),
    ("PHONE", "06 12 34 56 78"),
    ("PHONE", "030/12345678"),
    ("CREDIT_CARD", "4111 1111 1111 1111"),
    ("CREDIT_CARD", "5500-0000-0000-0004"),
    ("CREDIT_CARD", "378282246310005"),
    ("IBAN", "GB82WEST12345698765432"),
    ("IBAN", "GB82 WEST 1234 5698 7654 32"),
    ("IBAN", "DE89370400440532013000"),
    ("US_SSN", "123-45-6789"),
    ("US_SSN", "078-05-1120"),
    ("IP_ADDRESS", "192.168.0.254"),
    ("IP_ADDRESS", "2001:db8::8a2e:370:7334"),
    ("IP_ADDRESS", "fe80::1"),
    ("URL_CREDENTIALS", "https://admin:s3cret@db.example.com:5432"),
    ("URL_CREDENTIALS", "redis://:hunter2pw@cache.internal"),
    ("SECRET", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"),
    ("SECRET", "sk-" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0u1V2w3X4"),
    ("SECRET", "ghp_" + "x7Kq2LmN9pR4sT6vW8yZ1aB3cD5eF7gH9jK0"),
    ("SECRET", "github_pat_11ABCDEFG0123456789_abcdefghijklmnop"),
    ("SECRET", "AKIAIOSFODNN7EXAMPLE"),
    ("SECRET", "xoxb-123456789012-abcdefghijklmn"),
    ("SECRET", "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"),
    ("SECRET", "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ012345"),
    ("SECRET", "glpat-xY7zAb3Cd9Ef1Gh5Ij2K"),
    ("SECRET", JWT),
    ("SECRET", PEM),
    ("SECRET", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),  # generic high-entropy
]

NEGATIVE = [
    ("CREDIT_CARD", "4111 1111 1111 1112"),  # Luhn fails
    ("CREDIT_CARD", "1700000000000"),  # 13-digit millisecond timestamp
    ("IBAN", "GB82WEST12345698765433"),  # one digit changed: mod-97 fails
    ("IBAN", "DE89370400440532013001"),
    # SSN areas 000, 666 and 9xx, group 00 and serial 0000 are never issued.
    *[("US_SSN", v) for v in ("000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567")],
    ("US_SSN", "123-45-0000"),
    *[("IP_ADDRESS", v) for v in ("999.1.1.1", "1.2.3.256", "12:30:45", "a[1::2]")],
    *[("PHONE", v) for v in ("2023", "123456", "order 48213-77", "01.02.2023 10:30")],
    ("SECRET", "antidisestablishmentarianism"),
    ("SECRET", "/usr/local/lib/python3/site-packages"),
    ("SECRET", "2b7e151628aed2a6abf7158809cf4f3c"),  # hex hash, at most 4 bits/char
    ("SECRET", "max_tokens=512 and tokens: 100"),
    ("URL_CREDENTIALS", "https://example.com/path?q=1"),
]

CLEAN = [
    "The quick brown fox jumps over the lazy dog in 2023.",
    "Order 123456 shipped on 12-03-2024; total was 1,299.99 EUR (version 1.2.3).",
    "Internationalization and incomprehensibilities are long English words.",
    "Call the function get_user_profile_by_id_v2 with page_size=50.",
]


@pytest.mark.parametrize(("kind", "value"), POSITIVE)
def test_detects(kind: str, value: str) -> None:
    text = f"Here it is: {value} , thanks."
    found = detect(text, DETECTORS)
    assert [(f.kind, f.text) for f in found] == [(kind, value)]
    assert text[found[0].start : found[0].end] == value


@pytest.mark.parametrize(("kind", "value"), NEGATIVE)
def test_does_not_detect(kind: str, value: str) -> None:
    assert kind not in {f.kind for f in detect(f"Here it is: {value} , thanks.", DETECTORS)}


@pytest.mark.parametrize("text", CLEAN)
def test_clean_text_unchanged(text: str) -> None:
    assert redact(text, DETECTORS, RedactionState()) == (text, [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password=hunter22 then hunter22 again", "password=<SECRET_1> then <SECRET_1> again"),
        ('{"api_key": "abc def ghi"}', '{"api_key": "<SECRET_1>"}'),
        ("DB_PASSWORD=Zx9!pq", "DB_PASSWORD=<SECRET_1>"),
        ("Authorization: Bearer abcdefghijklmnop1234", "Authorization: Bearer <SECRET_1>"),
        ("see https://u:pw@host.io/a/b", "see <URL_CREDENTIALS_1>/a/b"),
    ],
)
def test_assignment_values_and_partial_spans(text: str, expected: str) -> None:
    assert redact(text, DETECTORS, RedactionState())[0] == expected


def test_placeholder_numbering_within_one_string() -> None:
    text = "a@x.com, b@y.org, a@x.com and 4111111111111111"
    out, found = redact(text, DETECTORS, RedactionState())
    assert out == "<EMAIL_1>, <EMAIL_2>, <EMAIL_1> and <CREDIT_CARD_1>"
    assert [f.kind for f in found] == ["EMAIL", "EMAIL", "EMAIL", "CREDIT_CARD"]


def test_existing_placeholders_are_not_reused() -> None:
    out, _ = redact("<EMAIL_1> wrote to new@x.com", DETECTORS, RedactionState())
    assert out == "<EMAIL_1> wrote to <EMAIL_2>"


def test_kind_filter_keeps_other_kinds() -> None:
    out, _ = redact("a@x.com 192.168.0.1", DETECTORS, RedactionState(), kinds={"EMAIL"})
    assert out == "<EMAIL_1> 192.168.0.1"


def test_finding_repr_hides_value() -> None:
    assert "secret@x.com" not in repr(Finding("EMAIL", 0, 12, "secret@x.com"))


def chat(*contents: str, **extra: object) -> Record:
    roles = ["user", "assistant"] * len(contents)
    msgs = [{"role": r, "content": c} for r, c in zip(roles, contents, strict=False)]
    return record_from_obj({"id": "c1", "messages": msgs, **extra})


def test_block_numbers_consistently_across_messages_and_correction() -> None:
    rec = chat(
        "I am bob@corp.com, call +44 20 7946 0958",
        "Sure bob@corp.com, I will also cc amy@corp.com",
        correction="Reply to bob@corp.com only",
    )
    out = PIIRedactBlock().process(rec)
    assert isinstance(out, Record)
    assert out.messages == (
        Message("user", "I am <EMAIL_1>, call <PHONE_1>"),
        Message("assistant", "Sure <EMAIL_1>, I will also cc <EMAIL_2>"),
    )
    assert out.correction == "Reply to <EMAIL_1> only"
    assert out.meta["pii_redacted"] == {"EMAIL": 4, "PHONE": 1}
    assert "bob@corp.com" not in str(out.to_dict())


def test_block_numbers_across_turns_even_if_found_later() -> None:
    # The value is only recognisable in the second turn; the first turn is redacted too.
    out = PIIRedactBlock().process(chat("my code is Zq81xYw2", "ok, password=Zq81xYw2"))
    assert isinstance(out, Record)
    assert [m.content for m in out.messages] == ["my code is <SECRET_1>", "ok, password=<SECRET_1>"]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            {"prompt": "mail a@x.com", "completion": "ok, a@x.com"},
            ("mail <EMAIL_1>", "ok, <EMAIL_1>"),
        ),
        ({"text": "host 10.0.0.7 / 10.0.0.7"}, ("host <IP_ADDRESS_1> / <IP_ADDRESS_1>",)),
    ],
)
def test_block_on_completion_and_text(obj: dict[str, str], expected: tuple[str, ...]) -> None:
    out = PIIRedactBlock().process(record_from_obj({"id": "r", **obj}))
    assert isinstance(out, Record)
    got = (out.prompt, out.completion) if out.shape == "completion" else (out.text,)
    assert got == expected


def test_block_leaves_clean_records_identical_and_runs_in_a_pipeline() -> None:
    clean, dirty = chat(CLEAN[0], CLEAN[1]), chat("ssn 123-45-6789", "ok")
    log = DropLog()
    out = list(PIIRedactBlock().run([clean, dirty], log))
    assert out[0] is clean
    assert out[1].messages[0].content == "ssn <US_SSN_1>"
    assert log.changed["pii"] == 1 and log.kept["pii"] == 2


def test_drop_mode() -> None:
    block = PIIRedactBlock(mode="drop", kinds=["US_SSN", "EMAIL"])
    assert block.process(chat("ssn 123-45-6789, a@x.com", "ok")) == Drop(
        "pii", {"kinds": ["EMAIL", "US_SSN"]}
    )
    assert isinstance(block.process(chat("ip 10.0.0.1", "ok")), Record)  # not a wanted kind


def test_params_and_config_errors() -> None:
    params = PIIRedactBlock(kinds=["email"]).params()
    assert json.loads(json.dumps(params)) == {
        "kinds": ["EMAIL"],
        "mode": "redact",
        "detectors": ["RegexDetector"],
        "presidio": False,
        "names": False,
    }
    with pytest.raises(ConfigError):
        PIIRedactBlock(mode="mask")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        PIIRedactBlock(kinds=["EMAILS"])


def test_presidio_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)
    with pytest.raises(ImportError, match="pip install presidio-analyzer"):
        PIIRedactBlock(presidio=True)


def test_presidio_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    class Result:
        def __init__(self, entity_type: str, start: int, end: int) -> None:
            self.entity_type, self.start, self.end = entity_type, start, end

    class Engine:
        def analyze(self, text: str, **_: object) -> list[Result]:
            return [Result("PERSON", 0, 5), Result("EMAIL_ADDRESS", 9, 16)]

    fake = type(sys)("presidio_analyzer")
    fake.AnalyzerEngine = Engine  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "presidio_analyzer", fake)
    assert PresidioDetector().find("Alice at a@x.com") == [
        Finding("PERSON", 0, 5, "Alice"),
        Finding("EMAIL", 9, 16, "a@x.com"),
    ]
    out, _ = redact("Alice at a@x.com", [PresidioDetector()], RedactionState())
    assert out == "<PERSON_1> at <EMAIL_1>"


FILLER = ["hello", "order 123456", "in 2023", "v1.2.3", "the lazy dog", "x=5", "ok!"]
fragments = st.lists(st.sampled_from([v for _, v in POSITIVE] + FILLER + CLEAN), max_size=8)
separators = st.sampled_from([" ", "\n", ", ", "; ", " and ", ": ", "(", ")"])


@settings(max_examples=300, deadline=None)
@given(fragments, separators)
def test_redaction_hides_every_found_value_and_is_idempotent(parts: list[str], sep: str) -> None:
    text = sep.join(parts)
    once, found = redact(text, DETECTORS, RedactionState())
    for f in found:
        assert f.text not in once
    assert redact(once, DETECTORS, RedactionState())[0] == once


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("abcXYZ0189 .:-@/_+=<>()\n"), max_size=60))
def test_arbitrary_text_is_idempotent(text: str) -> None:
    once, found = redact(text, DETECTORS, RedactionState())
    if not found:
        assert once == text
    assert redact(once, DETECTORS, RedactionState())[0] == once


ALLOWED = ["+1 (800) 555-0100", "help@northwind.example", "1 Market Street, Springfield"]


def test_the_allow_list_keeps_the_organisations_own_values_of_every_kind() -> None:
    """A bank's hotline in a correction, its mailbox, its office: kept in any format; the
    customer's own number, mailbox and street beside them are still redacted."""
    from tuneloop.curate.pii import PIIRedactBlock

    reply = (
        "Call our hotline on 800.555.0100 or (800) 555-0100, write to HELP@northwind.example or "
        "visit 1 Market Street. Your number 415-555-0199 and jane.doe@gmail.com were updated; "
        "we will post the card to 12 Elm Road."
    )
    record = record_from_obj({"id": "c", "prompt": "Update my details", "completion": reply})
    for allow, kept in (([], False), (ALLOWED, True)):
        out = PIIRedactBlock(names=True, allow=allow).process(record)
        assert isinstance(out, Record)
        text = out.completion or ""
        for value in (
            "800.555.0100",
            "(800) 555-0100",
            "HELP@northwind.example",
            "1 Market Street",
        ):
            assert (value in text) is kept, (allow, value, text)
        for value in ("415-555-0199", "jane.doe@gmail.com", "12 Elm Road"):
            assert value not in text, (allow, value, text)


def test_an_allowed_shop_does_not_allow_a_customer_of_the_same_first_name() -> None:
    from tuneloop.curate.findings import Finding
    from tuneloop.curate.pii import AllowList

    allow = AllowList(["John Lewis", "0800 123 4567"])
    assert allow.allows(Finding("PERSON", 0, 10, "john  lewis"))
    assert not allow.allows(Finding("PERSON", 0, 4, "John"))
    assert allow.allows(Finding("PHONE", 0, 16, "+44 800 123 4567"))
    assert not allow.allows(Finding("PHONE", 0, 8, "123 4567"))  # a part is not the number
    assert not allow.allows(Finding("PHONE", 0, 13, "0800 123 4568"))
