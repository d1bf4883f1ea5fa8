"""PIIRedactBlock: keep personal data and credentials out of training data.

A model fine-tuned on logged traffic can memorise and later repeat what users pasted into it:
e-mail addresses, phone numbers, card numbers, API keys. This block replaces each such value with
a placeholder such as ``<EMAIL_1>`` before the record reaches a dataset, or drops the record.

Two layers:

- *Detectors* find spans (:class:`Finding`). :class:`RegexDetector` is pure standard library and
  always available; :class:`PresidioDetector` adds Microsoft Presidio's NER-based recognisers
  (names, places) when ``presidio-analyzer`` is installed.
- :func:`redact` turns findings into placeholders. Numbering is per *record*, not per string:
  the same address in the user turn and in the assistant turn becomes ``<EMAIL_1>`` in both, so
  the model still learns that the answer refers to what the user gave, and a second distinct
  address becomes ``<EMAIL_2>``.

Precision matters as much as recall: redacting every long number would also erase order numbers,
timestamps and amounts that the examples are about. So number-shaped kinds need their checksum
(Luhn for cards, ISO 13616 mod-97 for IBANs) or their registry rules (SSN areas) to pass.

The original values are never logged, counted by value or put in ``meta``; only per-kind counts
are recorded (``meta["pii_redacted"] = {"EMAIL": 2}``).
"""

from __future__ import annotations

import bisect
import importlib
import ipaddress
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, Protocol

from tuneloop.curate.base import Drop, DropLog, MapBlock
from tuneloop.curate.findings import Finding
from tuneloop.curate.persons import PersonDetector
from tuneloop.errors import ConfigError
from tuneloop.records import Record

KINDS = (
    "EMAIL",
    "PHONE",
    "CREDIT_CARD",
    "IBAN",
    "US_SSN",
    "IP_ADDRESS",
    "URL_CREDENTIALS",
    "SECRET",
    "PERSON",
    "STREET_ADDRESS",
)
Mode = Literal["redact", "drop"]

# When two findings of the same length overlap, the more specific kind wins: a checksummed IBAN
# over a generic high-entropy token, an SSN over a national phone number with the same digits.
_SPECIFICITY = {
    "URL_CREDENTIALS": 90,
    "CREDIT_CARD": 85,
    "IBAN": 85,
    "SECRET": 80,
    "US_SSN": 60,
    "EMAIL": 50,
    "STREET_ADDRESS": 70,
    "IP_ADDRESS": 40,
    "PHONE": 30,
    "PERSON": 20,
}
# A placeholder this module wrote; text inside one is never detected again (idempotence).
PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*)_(\d+)>")
# Values shorter than this are only swept where they stand alone, so that a short value found
# once (an IPv6 "fe80::1", a 4-character password) does not cut other words apart.
_FREE_SWEEP_LEN = 8


class BatchDetector(Protocol):
    """A detector that is cheaper run over many texts at once (a neural model)."""

    def find_many(self, texts: Sequence[str]) -> list[list[Finding]]: ...


class Detector(Protocol):
    """Anything that finds sensitive spans in a string."""

    def find(self, text: str) -> list[Finding]: ...


# --------------------------------------------------------------------------- validators


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdecimal())


def luhn_ok(number: str) -> bool:
    """The Luhn checksum every payment card number carries.

    Without it any 16-digit order number, tracking id or timestamp would be redacted as a card;
    with it only one random number in ten passes, and together with the issuer prefix check
    almost none of the numbers that training examples are actually about.
    """
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_ok(candidate: str) -> bool:
    """13-19 digits, one separator style, a card issuer's first digit (2-6) and Luhn."""
    digits = _digits(candidate)
    separators = {c for c in candidate if not c.isdecimal()}
    return (
        13 <= len(digits) <= 19
        and len(separators) <= 1
        and digits[0] in "23456"
        and luhn_ok(digits)
    )


def iban_ok(candidate: str) -> bool:
    """The ISO 13616 check: move the first four characters to the end, letters to 10..35, mod 97.

    Product codes and reference numbers look like IBANs (two letters, two digits, then
    alphanumerics); only 1 in 97 of them passes this check, while every real IBAN does.
    """
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _digit_count(low: int, high: int) -> Callable[[str], bool]:
    """A phone number has 8-15 digits (E.164); fewer are years, extensions or short ids."""

    def check(candidate: str) -> bool:
        return low <= len(_digits(candidate)) <= high

    return check


def _ipv6_ok(candidate: str) -> bool:
    """A real IPv6 address, not a slice like ``a[1::2]`` or a clock time ``12:30:45``."""
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    groups = [g for g in candidate.split(":") if g]
    return len(groups) >= 2 and any(len(g) >= 3 for g in groups)


def shannon_entropy(token: str) -> float:
    """Bits per character of the token's own character distribution."""
    counts = Counter(token)
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _identifier_like(token: str) -> bool:
    """Paths and snake/kebab identifiers (``/usr/lib/python3/site-packages``) are not secrets.

    Random keys with separators have mixed case in their pieces; an all-lowercase, separated
    token is a name a person typed.
    """
    parts = [p for p in re.split(r"[/_\-]+", token) if p]
    return len(parts) > 1 and all(p == p.lower() for p in parts)


def _high_entropy_secret(token: str) -> bool:
    """Random-looking: ≥ 4.0 bits/char, letters and digits, not a path or identifier.

    English words and identifiers stay well under 4 bits/char; keys drawn from 62+ symbols are
    near 5. Hex digests (16 symbols) reach 4.0 only if every digit occurs equally often, and
    lowercase UUIDs are excluded as identifier-like, so commit ids and UUIDs are kept.
    """
    has_letter = any(c.isalpha() for c in token)
    has_digit = any(c.isdigit() for c in token)
    return (
        has_letter
        and has_digit
        and not _identifier_like(token)
        and shannon_entropy(token.rstrip("=")) >= 4.0
    )


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class Rule:
    """One regular expression for one kind, with an optional validator.

    ``groups`` names the capture groups that hold the sensitive part (the first that matched is
    used); without them the whole match is the finding.
    """

    kind: str
    pattern: re.Pattern[str]
    check: Callable[[str], bool] | None = None
    groups: tuple[str, ...] = ()

    def findings(self, text: str) -> Iterable[Finding]:
        """Every valid match, overlapping ones included (:func:`resolve_overlaps` picks).

        The search resumes inside each match, not after it: in "+44 20 7946 0958 4111 1111
        1111 1111" the first candidate runs into the card number, and the card must still be
        found.
        """
        pos = 0
        while (m := self.pattern.search(text, pos)) is not None:
            found = self._accept(m, text) or self._shorter(m, text)
            if found is not None:
                yield found
            pos = m.start() + 1

    def _accept(self, m: re.Match[str], text: str) -> Finding | None:
        start, end = _rule_span(m, self.groups)
        value = text[start:end]
        if start < end and (self.check is None or self.check(value)):
            return Finding(self.kind, start, end, value)
        return None

    def _shorter(self, m: re.Match[str], text: str) -> Finding | None:
        """Retry a match that failed its check without its trailing space-separated words.

        Greedy patterns run on into the next number ("+44 20 7946 0958 555 0100" has too many
        digits for one phone number); the valid number at the front must still be found.
        """
        if self.check is None:
            return None
        cut = text.rfind(" ", m.start(), m.end())
        while cut > m.start():
            shorter = self.pattern.match(text, m.start(), cut)
            found = self._accept(shorter, text) if shorter is not None else None
            if found is not None:
                return found
            cut = text.rfind(" ", m.start(), cut)
        return None


def _rule_span(m: re.Match[str], groups: tuple[str, ...]) -> tuple[int, int]:
    for name in groups:
        if m.group(name) is not None:
            return m.span(name)
    return m.span()


_TOKEN = r"A-Za-z0-9_\-"  # characters of an API key; a key never starts or ends inside these
# Not the tail or head of a longer number ("12.555-123-4567"); a space may separate two numbers.
_NO_NUM_BEFORE = r"(?<![\w+])(?<!\d[.\-/])"
_NO_NUM_AFTER = r"(?!\w|[.\-/]\d)"
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"


def _rule(
    kind: str,
    pattern: str,
    check: Callable[[str], bool] | None = None,
    groups: tuple[str, ...] = (),
    flags: int = 0,
) -> Rule:
    return Rule(kind, re.compile(pattern, flags), check, groups)


def _secret_rules() -> list[Rule]:
    """API keys by their vendor prefix: a leaked key is a live credential, not just privacy."""
    b, e = rf"(?<![{_TOKEN}])", rf"(?![{_TOKEN}])"
    prefixed = [
        r"sk-(?:proj-|svcacct-|admin-|ant-)?[A-Za-z0-9_\-]{20,}",  # OpenAI, Anthropic
        r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}",  # GitHub tokens
        r"github_pat_[A-Za-z0-9_]{22,}",  # GitHub fine-grained tokens
        r"(?:AKIA|ASIA)[A-Z0-9]{16}",  # AWS access key ids
        r"xox[baprs]-[A-Za-z0-9\-]{10,}",  # Slack
        r"AIza[A-Za-z0-9_\-]{35}",  # Google API keys
        r"hf_[A-Za-z0-9]{30,}",  # Hugging Face
        r"glpat-[A-Za-z0-9_\-]{20,}",  # GitLab
        r"eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]*",  # JWT
    ]
    rules = [_rule("SECRET", b + p + e) for p in prefixed]
    # A PEM private key block; a truncated one (no END line) is cut at the end of the base64.
    rules.append(
        _rule(
            "SECRET",
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----"
            r"(?:[\s\S]{0,16384}?-----END[A-Z0-9 ]*PRIVATE KEY-----|[A-Za-z0-9+/=\s:,\-]*)",
        )
    )
    # The value of password=..., "api_key": "...", DB_PASSWORD=..., token: ... assignments.
    key = (
        r"(?:[A-Za-z0-9]{1,30}[_\-]){0,4}(?:password|passwd|pwd|passphrase|secret|secret[_\-]?key"
        r"|api[_\-]?key|apikey|access[_\-]?key|private[_\-]?key|token|access[_\-]?token"
        r"|auth[_\-]?token|refresh[_\-]?token|client[_\-]?secret)"
    )
    value = r"""(?:"(?P<q1>[^"\n]{4,})"|'(?P<q2>[^'\n]{4,})'|(?P<v>[^\s"'`,;<>]{4,}))"""
    rules.append(
        _rule(
            "SECRET",
            rf"(?<![A-Za-z0-9]){key}[\"']?[ \t]*[:=][ \t]*{value}",
            groups=("q1", "q2", "v"),
            flags=re.IGNORECASE,
        )
    )
    rules.append(
        _rule("SECRET", r"(?i)\bbearer[ \t]+(?P<v>[A-Za-z0-9_\-.~+/]{16,}=*)", groups=("v",))
    )
    # Generic: a long random token, whatever issued it.
    rules.append(
        _rule(
            "SECRET",
            r"(?<![A-Za-z0-9_\-+/])[A-Za-z0-9_\-+/]{24,}={0,2}(?![A-Za-z0-9_\-+/=])",
            _high_entropy_secret,
        )
    )
    return rules


def _phone_rules() -> list[Rule]:
    """Phone numbers need a + prefix, a US (area) layout or a 0-prefixed national layout.

    Bare digit runs are left alone: they are far more often ids, amounts and years.
    """
    sep = r"[ .\-]"
    return [
        _rule(
            "PHONE",
            rf"{_NO_NUM_BEFORE}\+\d{{1,3}}+(?:{sep}?\(?\d{{1,4}}+\)?){{2,6}}{_NO_NUM_AFTER}",
            _digit_count(8, 15),
        ),
        _rule(
            "PHONE",
            rf"{_NO_NUM_BEFORE}(?:\([2-9]\d\d\){sep}?|[2-9]\d\d{sep})\d{{3}}{sep}\d{{4}}{_NO_NUM_AFTER}",
        ),
        # 0-prefixed national numbers (UK 020 7946 0958, FR 06 12 34 56 78, DE 030 1234567).
        # One separator style throughout, so "01.02.2023 10:30" is not read as a number.
        _rule(
            "PHONE",
            rf"{_NO_NUM_BEFORE}0[1-9]\d{{0,3}}([ .\-/])\d{{2,8}}(?:\1\d{{2,8}}){{0,3}}"
            + _NO_NUM_AFTER,
            _digit_count(9, 12),
        ),
    ]


def default_rules() -> list[Rule]:
    """Every built-in rule, for :class:`RegexDetector`."""
    return [
        _rule(
            "EMAIL",
            r"(?<![\w.+\-%])[A-Za-z0-9._%+\-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)+"
            r"[A-Za-z]{2,63}(?![\w\-@])",
        ),
        *_phone_rules(),
        # Written as one run, in groups of four, or 4-6-5 / 4-6-4 (Amex, Diners).
        _rule(
            "CREDIT_CARD",
            r"(?<![\w\-])(?:\d{13,19}|\d{4}([ \-])\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?"
            r"|\d{4}([ \-])\d{6}\2\d{4,5})(?!\w)",
            _card_ok,
        ),
        _rule(
            "IBAN",
            r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?"
            r"(?![A-Za-z0-9])",
            iban_ok,
        ),
        # Area 000, 666 and 900-999, group 00 and serial 0000 are never issued.
        _rule(
            "US_SSN",
            r"(?<![\w\-])(?!000|666|9)\d{3}([\- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w\-]|\1\d)",
        ),
        _rule("IP_ADDRESS", rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\w|\.\d)"),
        _rule(
            "IP_ADDRESS",
            r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?"
            r"(?![\w:]|\.\d)",
            _ipv6_ok,
        ),
        # scheme://user:password@host — the whole authority goes, so no part of it is left.
        _rule(
            "URL_CREDENTIALS",
            r"(?i)\b[a-z][a-z0-9+.\-]{0,30}://[^\s:/?#@]*:[^\s/?#@]+@[A-Za-z0-9.\-_\[\]:%]+",
        ),
        *_secret_rules(),
    ]


class RegexDetector:
    """The built-in detector: regular expressions plus checksums, standard library only."""

    def __init__(self, rules: Sequence[Rule] | None = None) -> None:
        self.rules = list(rules) if rules is not None else default_rules()

    def find(self, text: str) -> list[Finding]:
        return [f for rule in self.rules for f in rule.findings(text)]


# --------------------------------------------------------------------------- Presidio

# Presidio entity names mapped onto this module's kinds, so placeholders and counts agree.
_PRESIDIO_KINDS = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
}


def _kind_name(entity: str) -> str:
    """A Presidio entity type as a placeholder-safe kind (``PERSON``, ``US_DRIVER_LICENSE``)."""
    mapped = _PRESIDIO_KINDS.get(entity, entity)
    return re.sub(r"[^A-Z0-9_]", "_", mapped.upper()) or "PII"


class PresidioDetector:
    """Presidio's analyzer as a detector: adds names, locations and other NER-found entities.

    ``presidio_analyzer`` is imported here, not at module load, so the block works without it.
    """

    def __init__(
        self,
        entities: Sequence[str] | None = None,
        language: str = "en",
        score_threshold: float = 0.5,
    ) -> None:
        try:
            module = importlib.import_module("presidio_analyzer")
        except ImportError as exc:
            raise ImportError(
                "PresidioDetector needs Presidio: pip install presidio-analyzer "
                "(and a spaCy model, e.g. python -m spacy download en_core_web_lg)"
            ) from exc
        self.entities = list(entities) if entities is not None else None
        self.language = language
        self.score_threshold = score_threshold
        self._engine: Any = module.AnalyzerEngine()

    def find(self, text: str) -> list[Finding]:
        results = self._engine.analyze(
            text=text,
            language=self.language,
            entities=self.entities,
            score_threshold=self.score_threshold,
        )
        out = []
        for r in results:
            start, end = int(r.start), int(r.end)
            if 0 <= start < end <= len(text):
                out.append(Finding(_kind_name(str(r.entity_type)), start, end, text[start:end]))
        return out


# --------------------------------------------------------------------------- redaction


@dataclass
class RedactionState:
    """Placeholder numbering for one record: value → placeholder, and how many were replaced.

    One state spans all text fields of a record so that a value gets the same placeholder
    wherever it appears in that record, and a fresh state starts each record so numbers do not
    leak information across records.
    """

    placeholders: dict[str, tuple[str, str]] = field(default_factory=dict)  # value → (kind, ph)
    last_index: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)

    def reserve(self, text: str) -> None:
        """Skip numbers already used by placeholders in ``text`` (a re-run must not reuse them)."""
        for m in PLACEHOLDER.finditer(text):
            kind, n = m.group(1), int(m.group(2))
            self.last_index[kind] = max(self.last_index[kind], n)

    def placeholder(self, kind: str, value: str) -> str:
        """The placeholder for ``value``, numbering a new one as ``<KIND_N>``."""
        if value not in self.placeholders:
            self.last_index[kind] += 1
            self.placeholders[value] = (kind, f"<{kind}_{self.last_index[kind]}>")
        return self.placeholders[value][1]

    def learn(self, findings: Iterable[Finding]) -> None:
        """Number findings in order, so numbering follows reading order across fields."""
        for f in findings:
            self.placeholder(f.kind, f.text)


class _Spans:
    """Disjoint half-open intervals, kept sorted, with an O(log n) overlap test."""

    def __init__(self, spans: Iterable[Finding] = ()) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        for f in spans:
            self.add(f)

    def overlaps(self, f: Finding) -> bool:
        i = bisect.bisect_right(self.starts, f.start)
        before = i > 0 and self.ends[i - 1] > f.start
        after = i < len(self.starts) and self.starts[i] < f.end
        return before or after

    def add(self, f: Finding) -> None:
        i = bisect.bisect_right(self.starts, f.start)
        self.starts.insert(i, f.start)
        self.ends.insert(i, f.end)


def resolve_overlaps(findings: Iterable[Finding]) -> list[Finding]:
    """Keep non-overlapping findings: the longest first, then the most specific kind."""
    ranked = sorted(
        findings, key=lambda f: (-(f.end - f.start), -_SPECIFICITY.get(f.kind, 0), f.start)
    )
    kept: list[Finding] = []
    taken = _Spans()
    for f in ranked:
        if not taken.overlaps(f):
            kept.append(f)
            taken.add(f)
    return sorted(kept, key=lambda f: f.start)


def _placeholder_spans(text: str) -> list[Finding]:
    return [
        Finding("PLACEHOLDER", m.start(), m.end(), m.group()) for m in PLACEHOLDER.finditer(text)
    ]


NUMBER_KINDS = frozenset({"PHONE", "CREDIT_CARD", "IBAN", "US_SSN"})


class AllowList:
    """Values that are never redacted, of any kind: the organisation's own hotline, its office
    address, its support mailbox, its product names (``curate.pii_allow``).

    A number is compared by its digits, so "+1 (800) 555-0100" allows "1-800-555-0100" and
    "800.555.0100" (one may omit the other's country code or trunk 0, not more); text
    is compared case- and space-insensitively, and a street address or email may be part of an
    allowed value ("1 Market Street" inside "1 Market Street, Springfield"). A name must match
    whole: allowing "John Lewis" (a shop) leaves a customer called John redacted.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values = tuple(v for v in values if v.strip())
        self._texts = tuple(_folded(v) for v in self.values)
        self._numbers = tuple(d for v in self.values if len(d := _significant(v)) >= 7)

    def __bool__(self) -> bool:
        return bool(self.values)

    def allows(self, f: Finding) -> bool:
        if f.kind in NUMBER_KINDS:
            digits = _significant(f.text)
            return len(digits) >= 7 and any(_same_number(digits, n) for n in self._numbers)
        text = _folded(f.text)
        if f.kind == "PERSON":
            return text in self._texts
        return any(text == a or f" {text} " in f" {a} " for a in self._texts)


def _significant(number: str) -> str:
    """A number's digits without the trunk prefix: "0800 123 4567" -> 8001234567."""
    return _digits(number).lstrip("0")


def _same_number(a: str, b: str) -> bool:
    """Equal, or equal but for a country code (1-3 digits) in front of a full number."""
    short, long = sorted((a, b), key=len)
    return short == long or (
        len(short) >= 9 and len(long) - len(short) <= 3 and long.endswith(short)
    )


def _folded(text: str) -> str:
    return " ".join(re.sub(r"[^\w@.+-]+", " ", text.casefold()).split())


def detect(
    text: str,
    detectors: Sequence[Detector],
    kinds: Collection[str] | None = None,
    found_before: Iterable[Finding] = (),
    allow: AllowList | None = None,
) -> list[Finding]:
    """All findings of the wanted kinds in ``text``, overlaps resolved.

    ``found_before`` holds findings a batch detector already made in ``text``. Kinds are
    filtered before overlaps are resolved, so an unwanted kind cannot hide a wanted one. Spans
    touching an existing placeholder are ignored, which makes redaction idempotent; values on
    the ``allow`` list are kept.
    """
    protected = _Spans(_placeholder_spans(text))
    candidates = [*found_before, *(f for d in detectors for f in d.find(text))]
    found = [
        f
        for f in candidates
        if (kinds is None or f.kind in kinds)
        and not protected.overlaps(f)
        and not (allow and allow.allows(f))
    ]
    return resolve_overlaps(found)


def _sweep(text: str, state: RedactionState, taken: _Spans) -> list[Finding]:
    """Other occurrences of values already known to be sensitive in this record.

    A password found after ``password=`` in one turn is just as sensitive where the user
    repeats it bare in the next turn, where no rule would recognise it.
    """
    out = []
    for value, (kind, _) in state.placeholders.items():
        start = text.find(value)
        while start != -1:
            end = start + len(value)
            f = Finding(kind, start, end, value)
            if _stands_alone(text, f) and not taken.overlaps(f):
                out.append(f)
            start = text.find(value, start + 1)
    return resolve_overlaps(out)


def _stands_alone(text: str, f: Finding) -> bool:
    if len(f.text) >= _FREE_SWEEP_LEN:
        return True
    before = text[f.start - 1] if f.start > 0 else " "
    after = text[f.end] if f.end < len(text) else " "
    return not before.isalnum() and not after.isalnum()


def _apply(text: str, found: list[Finding], state: RedactionState) -> tuple[str, list[Finding]]:
    """Replace ``found`` and every other occurrence of a known value by its placeholder."""
    taken = _Spans([*found, *_placeholder_spans(text)])
    everything = sorted(found + _sweep(text, state, taken), key=lambda f: f.start)
    pieces, pos = [], 0
    for f in everything:
        pieces += [text[pos : f.start], state.placeholder(f.kind, f.text)]
        state.counts[f.kind] += 1
        pos = f.end
    pieces.append(text[pos:])
    return "".join(pieces), everything


def redact(
    text: str,
    detectors: Sequence[Detector],
    counter_state: RedactionState,
    kinds: Collection[str] | None = None,
) -> tuple[str, list[Finding]]:
    """Replace sensitive spans in ``text`` by ``<KIND_N>`` placeholders.

    ``counter_state`` carries the numbering: pass the same one for every field of a record.
    Returns the new text and the findings (offsets refer to the input ``text``).
    """
    counter_state.reserve(text)
    found = detect(text, detectors, kinds)
    counter_state.learn(found)
    return _apply(text, found, counter_state)


# --------------------------------------------------------------------------- block


def _texts(record: Record) -> list[str]:
    """Every text field of a record, in reading order (messages, prompt, completion, ...)."""
    optional = (record.prompt, record.completion, record.text, record.correction)
    return [m.content for m in record.messages] + [t for t in optional if t is not None]


def _with_texts(record: Record, texts: list[str]) -> Record:
    """The record with its text fields replaced, in the order :func:`_texts` gave them."""
    it = iter(texts)
    messages = tuple(replace(m, content=next(it)) for m in record.messages)
    changes: dict[str, Any] = {"messages": messages}
    for name in ("prompt", "completion", "text", "correction"):
        if getattr(record, name) is not None:
            changes[name] = next(it)
    return record.with_content(**changes)


def _chunks(items: Iterable[Record], size: int) -> Iterator[list[Record]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


class PIIRedactBlock(MapBlock):
    """Redact (or drop records with) personal data and credentials in every text field.

    With ``names`` on, people's names and street addresses are found too
    (:mod:`tuneloop.curate.persons`); that detector runs a small neural model, so ``run``
    hands it the texts of ``batch_size`` records at a time.
    """

    name: ClassVar[str] = "pii"

    def __init__(
        self,
        kinds: Collection[str] | None = None,
        mode: Mode = "redact",
        detectors: Sequence[Detector] | None = None,
        presidio: bool = False,
        names: bool = False,
        allow: Sequence[str] = (),
        batch_size: int = 64,
    ) -> None:
        if mode not in ("redact", "drop"):
            raise ConfigError(f"pii: mode is {mode!r}; use 'redact' or 'drop'")
        self.detectors: list[Detector] = (
            list(detectors) if detectors is not None else [RegexDetector()]
        )
        if presidio:
            self.detectors.append(PresidioDetector())
        self.batch_detectors: list[BatchDetector] = []
        if names:
            self.batch_detectors.append(PersonDetector(allow=allow))
        self.kinds = self._check_kinds(kinds, custom=detectors is not None or presidio)
        self.mode: Mode = mode
        self.presidio = presidio
        self.names = names
        self.batch_size = batch_size
        self.allow = AllowList(allow)
        self._prefetched: dict[int, list[list[Finding]]] = {}

    @staticmethod
    def _check_kinds(kinds: Collection[str] | None, custom: bool) -> frozenset[str] | None:
        if kinds is None:
            return None
        wanted = frozenset(k.upper() for k in kinds)
        unknown = sorted(wanted - set(KINDS))
        if unknown and not custom:
            raise ConfigError(f"pii: unknown kinds {unknown}; use some of {', '.join(KINDS)}")
        return wanted

    def params(self) -> dict[str, Any]:
        return {
            "kinds": sorted(self.kinds) if self.kinds is not None else "all",
            "mode": self.mode,
            "detectors": [type(d).__name__ for d in [*self.detectors, *self.batch_detectors]],
            "presidio": self.presidio,
            "names": self.names,
            **({"allow": sorted(self.allow.values)} if self.allow else {}),
        }

    def run(self, records: Iterable[Record], log: DropLog) -> Iterator[Record]:
        for chunk in _chunks(records, self.batch_size):
            self._prefetched = self._batch_find(chunk)
            yield from super().run(chunk, log)
        self._prefetched = {}

    def _batch_find(self, records: Sequence[Record]) -> dict[int, list[list[Finding]]]:
        """Batch detectors' findings per record (by ``id``), per text field."""
        if not self.batch_detectors:
            return {}
        per_record = [_texts(r) for r in records]
        merged = self._find_many([t for texts in per_record for t in texts])
        out, pos = {}, 0
        for r, texts in zip(records, per_record, strict=True):
            out[id(r)] = merged[pos : pos + len(texts)]
            pos += len(texts)
        return out

    def _find_many(self, texts: Sequence[str]) -> list[list[Finding]]:
        """Every batch detector's findings per text."""
        merged: list[list[Finding]] = [[] for _ in texts]
        for d in self.batch_detectors:
            for acc, found in zip(merged, d.find_many(texts), strict=True):
                acc.extend(found)
        return merged

    def find(self, record: Record) -> list[list[Finding]]:
        """Findings per text field of ``record``, in :func:`_texts` order."""
        texts = _texts(record)
        before = self._prefetched.pop(id(record), None)
        if before is None:
            before = self._find_many(texts)
        return [
            detect(t, self.detectors, self.kinds, prior, self.allow)
            for t, prior in zip(texts, before, strict=True)
        ]

    def process(self, record: Record) -> Record | Drop:
        texts = _texts(record)
        found = self.find(record)
        if not any(found):
            return record
        if self.mode == "drop":
            return Drop("pii", {"kinds": sorted({f.kind for fs in found for f in fs})})
        state = RedactionState()
        for t in texts:
            state.reserve(t)
        for fs in found:
            state.learn(fs)
        redacted = [_apply(t, fs, state)[0] for t, fs in zip(texts, found, strict=True)]
        earlier = record.meta.get("pii_redacted")
        counts = Counter(earlier if isinstance(earlier, dict) else {}) + state.counts
        meta = {**record.meta, "pii_redacted": dict(sorted(counts.items()))}
        return _with_texts(record, redacted).with_content(meta=meta)
