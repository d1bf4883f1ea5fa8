"""PERSON and STREET_ADDRESS detection: precision and recall on generated text, and how much
real text without personal data it changes.

The generated set follows presidio-research: sentence templates filled by Faker, in twelve
locales, so names and addresses come from many countries. Scores are per token (a word of a
name found counts once), as presidio-research's evaluator scores them. The templates here were
written for this bench and are not the ones the detector was developed on. The baseline is
spaCy's ``en_core_web_sm`` NER alone, which is what Presidio's default PERSON recogniser runs.

Usage: python -m bench.pii_names_bench [--data DIR] [--n 2000]
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tuneloop.curate.findings import Finding
from tuneloop.curate.persons import PersonDetector
from tuneloop.curate.pii import resolve_overlaps

from bench import data
from bench.real_sets import SETS, records

LOCALES = (
    "en_US", "en_GB", "en_AU", "en_IN", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL",
    "sv_SE", "pt_PT",
)  # fmt: skip
KINDS = ("PERSON", "STREET_ADDRESS")

# {person}: first + last name; {first}, {last}: one of them; {address}: a street address;
# {city}, {company}: context that must not be flagged.
TEMPLATES = (
    "hello, {person} speaking. I can't log into the portal since this morning",
    "Your technician, {first}, never showed up on Tuesday.",
    "I'd like to add my daughter {first} as an authorised user on the card.",
    "Can the statement be mailed to {address} instead?",
    "We moved to {address}, {city} last month and the bills still go to the old place.",
    "{person} from {company} told me the fee would be waived.",
    "Please cancel the order placed by {person} on the 14th.",
    "Attn: {person}\nRe: claim 55-1093\nThe photos are attached.",
    "Good morning {first}, the documents you asked for are attached.",
    "Best regards,\n{person}",
    "Our office is at {address} - deliveries before noon please.",
    "According to {last}'s email the contract renews in March.",
    "Is this still {person}'s account? The name on the card is different.",
    "The contractor, {person}, needs access to the shared drive.",
    "I am writing on behalf of my father, {person}, who is in hospital.",
    "Courier left it at {address} but I live two doors down.",
    "My landlord {person} has not received the transfer.",
    "{first} and I share the account; can we both get cards?",
    "Prof. {last} recommended your service to our department.",
    "We are based in {city} and work with {company}.",
    "The refund for invoice 20-4471 went to {company} instead of me.",
    "Can {first} pick up the package at {address}?",
    "I visited {city} in May and my card was blocked twice.",
    "Will the new terms apply to accounts opened before June?",
    "Mark the ticket as resolved once {company} confirms the payment.",
)
# Written after the detector's rules were frozen; its errors were never looked at.
HELD_OUT = (
    "Quick question from {person}: why was my limit lowered?",
    "The appointment is booked under {last}, {first}.",
    "i already told {first} on the phone that the card was stolen",
    "Please confirm the new mailing address: {address}.",
    "Sent from my phone - {first}",
    "Our accountant {person} will send the tax forms to {company}.",
    "Delivery address: {address}\nRecipient: {person}",
    "{person} ({company}) asked us to re-issue the invoice.",
    "Could you put {first} {last} on the call with the {city} branch?",
    "The parcel for {person} is sitting at the depot in {city}.",
    "Ever since {company} took over, nobody answers the phone.",
    "Per our conversation, {first}, the fee has been reversed.",
    "Which documents does {person} need to bring to the {city} office?",
    "I rent the flat at {address} from {person}.",
    "Regards, {first}",
    "The claim adjuster assigned to us is {person}.",
    "Is the branch on {address} open on Saturdays?",
    "{first} {last} was my previous advisor and left in April.",
    "We ordered from {company} twice and both orders are missing.",
    "My neighbour {first} received my package by mistake.",
)


@dataclass(frozen=True)
class Sample:
    text: str
    gold: tuple[tuple[int, int, str], ...]  # (start, end, kind)


def _values(fake: object, rng: random.Random) -> dict[str, tuple[str, str | None]]:
    f = fake
    first, last = f.first_name(), f.last_name()  # type: ignore[attr-defined]
    return {
        "person": (f"{first} {last}", "PERSON"),
        "first": (first, "PERSON"),
        "last": (last, "PERSON"),
        "address": (" ".join(f.street_address().split()), "STREET_ADDRESS"),  # type: ignore[attr-defined]
        "city": (f.city(), None),  # type: ignore[attr-defined]
        "company": (f.company(), None),  # type: ignore[attr-defined]
    }


def generate(n: int, seed: int = 2026, templates: Sequence[str] = TEMPLATES) -> list[Sample]:
    from faker import Faker

    rng = random.Random(seed)
    fakers = []
    for i, locale in enumerate(LOCALES):
        fake = Faker(locale)
        fake.seed_instance(seed + i)
        fakers.append(fake)
    out = []
    for _ in range(n):
        template = rng.choice(templates)
        values = _values(rng.choice(fakers), rng)
        text, gold, pos = "", [], 0
        for m in re.finditer(r"\{(\w+)\}", template):
            text += template[pos : m.start()]
            value, kind = values[m.group(1)]
            if kind is not None:
                gold.append((len(text), len(text) + len(value), kind))
            text += value
            pos = m.end()
        out.append(Sample(text + template[pos:], tuple(gold)))
    return out


def _tokens(text: str, start: int, end: int) -> set[int]:
    return {m.start() for m in re.finditer(r"\w+", text) if m.start() >= start and m.end() <= end}


@dataclass
class Scores:
    tp: Counter[str]
    fp: Counter[str]
    fn: Counter[str]
    ms_per_text: float

    def precision(self, kind: str) -> float:
        return self.tp[kind] / max(1, self.tp[kind] + self.fp[kind])

    def recall(self, kind: str) -> float:
        return self.tp[kind] / max(1, self.tp[kind] + self.fn[kind])


Finder = Callable[[Sequence[str]], list[list[Finding]]]


def score(samples: list[Sample], find: Finder) -> Scores:
    t0 = time.perf_counter()
    found = find([s.text for s in samples])
    ms = (time.perf_counter() - t0) * 1000 / max(1, len(samples))
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for sample, findings in zip(samples, found, strict=True):
        gold = {t: k for s, e, k in sample.gold for t in _tokens(sample.text, s, e)}
        kept = resolve_overlaps(findings)
        pred = {t: f.kind for f in kept for t in _tokens(sample.text, f.start, f.end)}
        for t, k in pred.items():
            (tp if gold.get(t) == k else fp)[k] += 1
        for t, k in gold.items():
            if pred.get(t) != k:
                fn[k] += 1
    return Scores(tp, fp, fn, ms)


def spacy_alone(detector: PersonDetector) -> Finder:
    """spaCy's NER by itself (PERSON only): the baseline."""

    def find(texts: Sequence[str]) -> list[list[Finding]]:
        out = []
        for doc in detector._nlp.pipe(texts):
            people = [e for e in doc.ents if e.label_ == "PERSON"]
            out.append([Finding("PERSON", e.start_char, e.end_char, e.text) for e in people])
        return out

    return find


@dataclass
class RealResult:
    name: str
    records: int
    changed: int
    kinds: Counter[str]


def real_text(detector: PersonDetector, root: Path, limit: int) -> list[RealResult]:
    """Share of records of clean public sets in which something would be redacted."""
    out = []
    for name, (_, need) in SETS.items():
        if not (root / need).exists():
            continue
        texts = []
        for i, record in enumerate(records(name, root)):
            if i >= limit:
                break
            texts.append("\n".join(m.content for m in record.messages))
        found = detector.find_many(texts)
        kinds = Counter(f.kind for fs in found for f in fs)
        out.append(RealResult(name, len(texts), sum(1 for fs in found if fs), kinds))
    return out


def table(rows: list[tuple[str, Scores]], real: list[RealResult], n: int) -> list[str]:
    lines = [
        f"Generated sets: {n} sentences each, {len(LOCALES)} Faker locales; development "
        f"templates ({len(TEMPLATES)}, whose errors were studied) and held-out templates "
        f"({len(HELD_OUT)}, written after the rules were frozen)",
        "",
        "| detector | templates | PERSON P | PERSON R | ADDRESS P | ADDRESS R | ms / text |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, s in rows:
        lines.append(
            f"| {label} | {s.precision('PERSON'):.3f} | {s.recall('PERSON'):.3f} | "
            f"{s.precision('STREET_ADDRESS'):.3f} | {s.recall('STREET_ADDRESS'):.3f} | "
            f"{s.ms_per_text:.2f} |"
        )
    lines += ["", "| real set (no planted PII) | records | changed | found |"]
    lines.append("|---|---:|---:|---|")
    for r in real:
        found = ", ".join(f"{k} {v}" for k, v in r.kinds.most_common()) or "–"
        lines.append(f"| {r.name} | {r.records:,} | {r.changed / r.records:.1%} | {found} |")
    return lines


def measure(n: int = 2000, limit: int = 2000) -> tuple[list[tuple[str, Scores]], list[RealResult]]:
    """Scores per (detector | template set), and the real sets' change rates."""
    detector = PersonDetector()
    rows = []
    for label, templates in (("development", TEMPLATES), ("held-out", HELD_OUT)):
        samples = generate(n, templates=templates)
        detector._cache.clear()
        baseline = score(samples, spacy_alone(detector))
        rows.append((f"spaCy en_core_web_sm NER alone | {label}", baseline))
        detector._cache.clear()
        rows.append((f"tuneloop PersonDetector | {label}", score(samples, detector.find_many)))
    return rows, real_text(detector, data.root(), limit)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="the data folder (default ../shared/data)")
    parser.add_argument("--n", type=int, default=2000, help="generated sentences")
    parser.add_argument("--limit", type=int, default=2000, help="records per real set")
    args = parser.parse_args()
    if args.data:
        data.use(args.data)
    rows, real = measure(args.n, args.limit)
    print("\n".join(table(rows, real, args.n)))
