"""Synthetic Northwind Bank support traffic with planted problems and the truth about them.

One task, end to end: a customer writes to the bank (chat widget, mobile app or e-mail) and the
assistant answers with a JSON object ``{"intent", "priority", "department", "reply"}``. The
generator writes what a fine-tuning pipeline would ingest (interactions with user, conversation,
source, time and feedback), a held-out eval set from *other* users, a few policy documents, and
``truth``: which record carries which planted phenomenon, so the demo and the tests can check that
the pipeline caught every one of them (and nothing else had to be caught).

Planted phenomena, each a few percent of the interactions (labels in ``truth``):

- ``pii:<KIND>`` — an e-mail, phone number, Luhn-valid card, mod-97-valid IBAN, SSN, IPv4 address
  or API key in a user message (kinds named as in :mod:`tuneloop.curate.pii`);
- ``exact_dup:<id>`` / ``near_dup:<id>`` — a re-sent copy of an earlier record, verbatim or with a
  few words changed (word 5-gram Jaccard ≥ 0.8 with the original, checked here);
- ``eval_copy:<eval id>`` / ``eval_near:<eval id>`` / ``eval_paraphrase:<eval id>`` — an eval item
  copied, lightly edited (Jaccard ≥ 0.8) or reworded (Jaccard ≤ 0.3, same meaning and slots);
- ``canary:<eval id>`` — a record carrying the eval set's canary string;
- ``low_quality:<kind>``, ``thumbs_down``, ``corrected``, ``over_long``, ``empty``.

Everything comes from one ``random.Random(seed)``: the same arguments give byte-identical output.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import random
import string
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate, count
from pathlib import Path
from typing import Any

import orjson

from tuneloop.demo import templates as tpl
from tuneloop.jsonl import atomic_writer, write_jsonl
from tuneloop.records import text_of
from tuneloop.textnorm import normalize, words

PII_KINDS = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "SECRET")
LOW_QUALITY_KINDS = ("empty_reply", "keyboard_mash", "repeated_lines", "base64_blob")
CANARY_PREFIX = "TUNELOOP-CANARY-"
SOURCES = ("chat_widget", "mobile_app", "email")
NGRAM = 5
NEAR_MIN_JACCARD = 0.8
PARAPHRASE_MAX_JACCARD = 0.3
OVER_LONG_CHARS = 20_000
MIN_RECORDS = 60
# Clean records stay this far apart (word 5-grams, see _Guard), well clear of near-dups' 0.8.
UNPLANNED_MAX_SIMILARITY = 0.6
_GUARD_TRIES = 25
# Share of interactions per planted phenomenon, and the least count (every kind appears once).
PLAN_RATES: dict[str, tuple[float, int]] = {
    "pii": (0.04, len(PII_KINDS)),
    "exact_dup": (0.03, 1),
    "near_dup": (0.03, 1),
    "eval_copy": (0.01, 1),
    "eval_near": (0.01, 1),
    "eval_paraphrase": (0.01, 1),
    "canary": (0.0, 1),
    "low_quality": (0.03, len(LOW_QUALITY_KINDS)),
    "thumbs_down": (0.03, 1),
    "corrected": (0.03, 1),
    "over_long": (0.001, 1),
    "empty": (0.001, 1),
}
_SOURCE_WEIGHTS = (5, 3, 2)
_HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 8, 8, 8, 8, 7, 7, 7, 6, 5, 4, 3, 2)
_INTENT_WEIGHTS = tuple(i.weight for i in tpl.INTENTS)
_INTENTS = {i.name: i for i in tpl.INTENTS}
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
_KEY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm", "asdfjkl;")


@dataclass(frozen=True, slots=True)
class GeneratedData:
    """Everything one ``generate`` call produced; ``truth`` maps interaction id → phenomenon."""

    interactions: list[dict[str, Any]]
    eval_items: list[dict[str, Any]]
    documents: list[dict[str, Any]]
    truth: dict[str, str]
    canary: str
    # interaction id → the exact PII value planted there, so a check can ask "was this redacted?"
    pii_values: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- text measures


def shingles(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    """Word n-grams of the normalized text (a text shorter than n is one shingle), as in minhash."""
    toks = words(text)
    if len(toks) < n:
        return {tuple(toks)}
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def jaccard(a: str, b: str, n: int = NGRAM) -> float:
    """Exact Jaccard similarity of the word n-gram sets: the number near-dedup thresholds use."""
    sa, sb = shingles(a, n), shingles(b, n)
    return len(sa & sb) / len(sa | sb)


def luhn_check_digit(payload: str) -> str:
    """The digit that makes ``payload + digit`` pass Luhn, so planted cards look real."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:  # doubled once the check digit is appended on the right
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str(-total % 10)


def iban_check_digits(country: str, bban: str) -> str:
    """ISO 13616 check digits: 98 minus (BBAN + country + "00" read in base 36) mod 97."""
    value = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{98 - value % 97:02d}"


def _text(body: dict[str, Any]) -> str:
    """The compared text of a record body, exactly as the pipeline reads it."""
    return text_of(body) or ""


def _word_count(text: str) -> int:
    return len(text.split())


# --------------------------------------------------------------------------- planted values


def _card_number(rng: random.Random) -> str:
    """A Visa, Mastercard or Amex number with a correct check digit, in a common layout."""
    issuer = rng.choice(("visa", "mc", "amex"))
    if issuer == "amex":
        payload = rng.choice(("34", "37")) + "".join(rng.choices(string.digits, k=12))
        num = payload + luhn_check_digit(payload)
        return rng.choice((num, f"{num[:4]} {num[4:10]} {num[10:]}"))
    head = "4" if issuer == "visa" else f"5{rng.randint(1, 5)}"
    payload = head + "".join(rng.choices(string.digits, k=15 - len(head)))
    num = payload + luhn_check_digit(payload)
    sep = rng.choice(("", " ", "-"))
    return sep.join(num[i : i + 4] for i in range(0, 16, 4))


def _iban(rng: random.Random) -> str:
    """A German, British, Dutch, French or Spanish IBAN whose mod-97 check holds."""
    digits, letters = string.digits, string.ascii_uppercase
    country, bban = rng.choice(
        (
            ("DE", "".join(rng.choices(digits, k=18))),
            ("GB", "".join(rng.choices(letters, k=4)) + "".join(rng.choices(digits, k=14))),
            ("NL", "".join(rng.choices(letters, k=4)) + "".join(rng.choices(digits, k=10))),
            ("FR", "".join(rng.choices(digits, k=23))),
            ("ES", "".join(rng.choices(digits, k=20))),
        )
    )
    iban = country + iban_check_digits(country, bban) + bban
    return rng.choice((iban, " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))))


def _pii_value(rng: random.Random, kind: str, slots: dict[str, str]) -> str:
    """One realistic value of ``kind`` (names from the record's own slots)."""
    if kind == "EMAIL":
        user = f"{slots['name']}.{slots['last']}{rng.randint(1, 99)}".lower()
        return f"{user}@{rng.choice(tpl.EMAIL_DOMAINS)}"
    if kind == "PHONE":
        area, exch, line = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
        layouts = (f"({area}) {exch}-{line:04d}", f"{area}-{exch}-{line:04d}")
        return rng.choice((*layouts, f"+1 {area} {exch} {line:04d}", f"{area}.{exch}.{line:04d}"))
    if kind == "CREDIT_CARD":
        return _card_number(rng)
    if kind == "IBAN":
        return _iban(rng)
    if kind == "US_SSN":
        area = rng.choice([a for a in range(1, 900) if a != 666])
        return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    if kind == "IP_ADDRESS":
        first = rng.choice([o for o in range(11, 224) if o not in (127, 169, 172, 192)])
        return ".".join(str(o) for o in (first, *(rng.randint(0, 255) for _ in range(3))))
    if kind == "SECRET":
        return "sk-proj-" + "".join(rng.choices(string.ascii_letters + string.digits, k=40))
    raise ValueError(f"unknown PII kind {kind!r}")


# --------------------------------------------------------------------------- slots and edits


def _money(value: float) -> str:
    return f"${value:,.0f}" if value == int(value) else f"${value:,.2f}"


def _day(when: datetime) -> str:
    return f"{_MONTHS[when.month - 1]} {when.day}"


def _slots(rng: random.Random, when: datetime) -> dict[str, str]:
    """Every slot any template may use, drawn fresh for one message written at ``when``."""
    past = when - timedelta(days=rng.randint(1, 20))
    future = when + timedelta(days=rng.randint(3, 30))
    trip = rng.randint(4, 21)
    amount = rng.choice((rng.uniform(4, 120), rng.uniform(120, 900), rng.uniform(900, 2600)))
    pick = rng.choice
    return {
        "name": pick(tpl.FIRST_NAMES),
        "last": pick(tpl.LAST_NAMES),
        "name2": pick(tpl.FIRST_NAMES),
        "card": pick(tpl.CARDS),
        "acct": pick(tpl.ACCOUNTS),
        "when": pick(tpl.WHENS).format(weekday=_WEEKDAYS[past.weekday()]),
        "asap": pick(tpl.ASAPS),
        "app": pick(tpl.APPS),
        "last4": f"{rng.randint(0, 9999):04d}",
        "merchant": pick(tpl.MERCHANTS),
        "city": pick(tpl.CITIES),
        "country": pick(tpl.COUNTRIES),
        "street": pick(tpl.STREETS),
        "bank": pick(tpl.BANKS),
        "employer": pick(tpl.EMPLOYERS),
        "device": pick(tpl.DEVICES),
        "version": f"{rng.randint(4, 7)}.{rng.randint(0, 19)}",
        "amount": _money(round(amount, 2)),
        "fee": _money(pick((5, 8, 12, 15, 25, 29, 35, 39))),
        "wire_amount": _money(rng.randrange(1_500, 48_000, 50)),
        "loan_amount": _money(rng.randrange(5_000, 60_000, 500)),
        "home_price": _money(rng.randrange(180_000, 950_000, 5_000)),
        "income": _money(rng.randrange(60_000, 260_000, 1_000)),
        "apr": f"{rng.uniform(6.5, 11.9):.2f}",
        "mrate": f"{rng.uniform(5.6, 7.4):.2f}",
        "old_rate": f"{rng.uniform(6.5, 8.4):.2f}",
        "down": str(pick((5, 10, 15, 20, 25))),
        "score": str(rng.randint(620, 820)),
        "years": str(rng.randint(2, 25)),
        "months": str(pick((2, 3, 6, 12))),
        "month": _MONTHS[past.month - 1],
        "loan_term": str(pick((24, 36, 48, 60, 72))),
        "term": pick(tpl.TERMS),
        "trip_days": str(trip),
        "date": _day(past),
        "future": _day(future),
        "future2": _day(future + timedelta(days=trip)),
        "days": str(rng.randint(3, 7)),
        "hours": str(rng.randint(2, 48)),
        "ref": f"WT-{rng.randint(100_000, 999_999)}",
    }


def _edit_words(rng: random.Random, text: str, k: int) -> str:
    """``k`` small edits a person makes when re-sending a message: swap, insert, drop, typo."""
    toks = text.split(" ")
    for _ in range(k):
        op = rng.randrange(4)
        bare = [t.strip(".,!?;:").lower() for t in toks]
        swaps = [i for i, b in enumerate(bare) if b in tpl.SYNONYMS]
        typos = [i for i, t in enumerate(toks) if t.isalpha() and len(t) >= 5]
        if op == 0 and swaps:
            i = rng.choice(swaps)
            toks[i] = toks[i].lower().replace(bare[i], tpl.SYNONYMS[bare[i]], 1)
        elif op == 1 and typos:
            i = rng.choice(typos)
            j = rng.randrange(1, len(toks[i]) - 2)
            w = toks[i]
            toks[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
        elif op == 2 and len(toks) > 8:
            del toks[rng.randrange(1, len(toks))]
        else:
            toks.insert(rng.randint(1, len(toks)), rng.choice(tpl.FILLERS))
    return " ".join(toks)


def _first_user(body: dict[str, Any]) -> str:
    if "prompt" in body:
        return str(body["prompt"])
    return next(str(m["content"]) for m in body["messages"] if m["role"] == "user")


def _with_first_user(body: dict[str, Any], text: str) -> dict[str, Any]:
    out = copy.deepcopy(body)
    if "prompt" in out:
        out["prompt"] = text
    else:
        next(m for m in out["messages"] if m["role"] == "user")["content"] = text
    return out


def _with_last_answer(body: dict[str, Any], answer: str) -> dict[str, Any]:
    out = copy.deepcopy(body)
    if "completion" in out:
        out["completion"] = answer
    else:
        out["messages"][-1]["content"] = answer
    return out


def _last_answer(body: dict[str, Any]) -> str:
    return str(body["completion"] if "completion" in body else body["messages"][-1]["content"])


def _mash(rng: random.Random, length: int) -> str:
    """Keyboard mash: runs along a keyboard row, no spaces, no digits (so not a secret)."""
    out: list[str] = []
    while len(out) < length:
        row = rng.choice(_KEY_ROWS)
        start = rng.randrange(len(row))
        out.extend(row[start : start + rng.randint(2, 6)] * rng.randint(1, 2))
    return "".join(out[:length])


# --------------------------------------------------------------------------- records


@dataclass(slots=True)
class _Draft:
    """A record before ids are assigned (ids follow time order, which is known only at the end)."""

    ref: int
    when: datetime
    user_id: str
    conversation_id: str
    source: str
    body: dict[str, Any]
    intent: tpl.Intent
    slots: dict[str, str]
    problem: int = 0
    feedback: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    target: int | str | None = None  # the original's ref, or an eval id
    pii_value: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        """The template a record was written from: where its look-alikes would come from."""
        return (self.intent.name, self.problem)


class _Guard:
    """Keeps unplanned similarity low: clean content too close to an earlier record is redrawn.

    Templates repeat, so two honest records can come out nearly alike, and a dedup or
    contamination check would then rightly flag a pair that the truth does not list. Against
    every earlier record (eval items included), the first user messages, which prompt-level eval
    checks compare, may share at most ``limit`` of the smaller one's 5-grams, so a short message
    is never contained in a longer one, and the whole texts' 5-gram Jaccard may be at most
    ``limit``. Look-alikes are written from the same problem template, so a record is compared
    only with the earlier records of its (intent, problem) bucket: exact, and linear in practice.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._buckets: dict[tuple[str, int], list[tuple[set[int], set[int]]]] = {}
        self._gram_ids: dict[tuple[str, ...], int] = {}  # small ints intersect much faster

    def _views(self, body: dict[str, Any]) -> tuple[set[int], set[int]]:
        ids = self._gram_ids
        full = {ids.setdefault(g, len(ids)) for g in shingles(_text(body))}
        user = {ids.setdefault(g, len(ids)) for g in shingles(_first_user(body))}
        return full, user

    def too_close(self, key: tuple[str, int], body: dict[str, Any]) -> bool:
        full, user = self._views(body)
        for other_full, other_user in self._buckets.get(key, ()):
            if len(user & other_user) > self.limit * min(len(user), len(other_user)):
                return True
            shared = len(full & other_full)
            if shared > self.limit * (len(full) + len(other_full) - shared):
                return True
        return False

    def add(self, key: tuple[str, int], body: dict[str, Any]) -> None:
        self._buckets.setdefault(key, []).append(self._views(body))


class _Generator:
    """Holds the one random stream and the id and conversation bookkeeping of a run."""

    def __init__(self, seed: int, n_users: int, start: datetime, days: int) -> None:
        self.rng = random.Random(seed)
        self.start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
        self.start = self.start.replace(microsecond=0)
        self.end = self.start + timedelta(days=days)
        self.days = days
        self._taken: set[str] = set()
        self._refs = count()
        self.users = [self.new_id("u-", 8) for _ in range(n_users)]
        # A few users write a lot and most write rarely (Zipf-like), as in real support traffic.
        self._user_cum = list(accumulate(1.0 / (i + 5) ** 0.5 for i in range(n_users)))
        self.home_source: dict[str, str] = {}
        self._threads: dict[str, tuple[str, datetime, str]] = {}
        self.guard = _Guard(UNPLANNED_MAX_SIMILARITY)

    def new_id(self, prefix: str, hex_len: int) -> str:
        """A fresh random id, never repeated within the run (users, eval users, conversations)."""
        while True:
            value = f"{prefix}{self.rng.getrandbits(4 * hex_len):0{hex_len}x}"
            if value not in self._taken:
                self._taken.add(value)
                return value

    def time(self) -> datetime:
        """A time in [start, end), busier in the day than at night."""
        rng = self.rng
        hour = rng.choices(range(24), weights=_HOUR_WEIGHTS)[0]
        offset = timedelta(days=rng.randrange(self.days), hours=hour, seconds=rng.randrange(3600))
        return self.start + offset

    def later(self, when: datetime) -> datetime:
        """A time after ``when`` (a re-send comes later), within three days and before the end."""
        room = int((self.end - when).total_seconds()) - 1
        return when + timedelta(seconds=max(0, min(self.rng.randint(30, 3 * 86_400), room)))

    def source_of(self, user: str) -> str:
        """Users mostly stick to one channel."""
        rng = self.rng
        home = self.home_source.setdefault(user, rng.choices(SOURCES, _SOURCE_WEIGHTS)[0])
        return home if rng.random() < 0.75 else rng.choices(SOURCES, _SOURCE_WEIGHTS)[0]

    def user_message(
        self, intent: tpl.Intent, problem: int, slots: dict[str, str], source: str, extra: str
    ) -> str:
        """Opener, problem, ask, a few details and a closer: 20-120 words, channel-flavoured."""
        rng = self.rng
        pool = [*intent.details, *tpl.GENERIC_DETAILS]
        rng.shuffle(pool)
        wanted = rng.choice((1, 1, 2, 3) if source == "email" else (0, 0, 1, 2))
        opener = rng.choice(tpl.OPENERS[source]).format_map(slots)
        closer = rng.choice(tpl.CLOSERS[source]).format_map(slots)
        asks = intent.asks if rng.random() < 0.6 else tpl.GENERIC_ASKS
        core = [intent.problems[problem][0], rng.choice(asks)]
        casual = source == "mobile_app" and rng.random() < 0.4
        after_ask = rng.random() < 0.5

        def render(n_details: int) -> list[str]:
            details = pool[:n_details]
            parts = [core[0], *details, core[1]] if after_ask else [core[0], core[1], *details]
            out = [p.format_map(slots) for p in parts]
            return [s.lower().rstrip(".") if casual else s for s in out]

        def size(body: list[str]) -> int:
            return _word_count(" ".join([opener, *body, closer, extra]))

        n = wanted
        while size(render(n)) < 20 and n < len(pool):
            n += 1
        while size(render(n)) > 120 and n > 0:
            n -= 1
        body = render(n)
        if extra:
            body.insert(rng.randint(1, len(body)), extra)
        if source == "email":
            return "\n\n".join(p for p in (opener, " ".join(body), closer) if p)
        return " ".join(p for p in (opener, *body, closer) if p)

    def answer(self, intent: tpl.Intent, slots: dict[str, str], reply: str | None = None) -> str:
        """The assistant's JSON answer; large disputes are escalated to high priority."""
        priority = intent.priority
        amount = float(slots["amount"].lstrip("$").replace(",", ""))
        if intent.name == "dispute_charge" and amount > 500:
            priority = "high"
        text = (reply or self.rng.choice(intent.replies)).format_map(slots)
        if self.rng.random() < 0.5:
            text += " " + self.rng.choice(tpl.REPLY_CLOSINGS).format_map(slots)
        obj = {
            "intent": intent.name,
            "priority": priority,
            "department": intent.department,
            "reply": text,
        }
        return json.dumps(obj, ensure_ascii=False)

    def body(self, turns: list[tuple[str, str]], shape: str, system: str | None) -> dict[str, Any]:
        """A chat (with an optional system prompt) or, for one turn, a prompt/completion pair."""
        if shape == "completion":
            return {"prompt": turns[0][0], "completion": turns[0][1]}
        messages = [{"role": "system", "content": system}] if system else []
        for user, assistant in turns:
            messages += [
                {"role": "user", "content": user},
                {"role": "assistant", "content": assistant},
            ]
        return {"messages": messages}

    def fresh(
        self,
        users: Sequence[str] | None = None,
        intent: tpl.Intent | None = None,
        extra: str = "",
        pii_kind: str | None = None,
        suffix: str = "",
        single_turn: bool = False,
        is_eval: bool = False,
    ) -> _Draft:
        """A new, clean interaction (or eval item: single turn, no system prompt, other users).

        The content is redrawn while it is too close to an earlier record (see :class:`_Guard`).
        """
        rng = self.rng
        if users is None:
            user = rng.choices(self.users, cum_weights=self._user_cum)[0]
        else:
            user = rng.choice(users)
        source, when = self.source_of(user), self.time()
        conversation = ""
        thread = self._threads.get(user)
        if not is_eval and thread is not None and rng.random() < 0.12:
            later = thread[1] + timedelta(minutes=rng.randint(5, 600))
            if later < self.end:  # a follow-up in the same conversation, on the same channel
                conversation, when, source = thread[0], later, thread[2]
        conversation = conversation or self.new_id("c-", 10)
        if not is_eval:
            self._threads[user] = (conversation, when, source)
        # The intent is drawn once, so redraws do not skew the mix towards wordier intents.
        intent = intent or rng.choices(tpl.INTENTS, weights=_INTENT_WEIGHTS)[0]
        for _ in range(_GUARD_TRIES):
            draft = self.content(intent, source, when, extra, pii_kind, single_turn, is_eval)
            if not self.guard.too_close(draft.key, draft.body):
                break
        if suffix:
            draft.body = _with_first_user(draft.body, _first_user(draft.body) + suffix)
        self.guard.add(draft.key, draft.body)
        draft.user_id, draft.conversation_id = user, conversation
        draft.feedback = {} if is_eval else self.clean_feedback()
        return draft

    def content(
        self,
        intent: tpl.Intent,
        source: str,
        when: datetime,
        extra: str,
        pii_kind: str | None,
        single_turn: bool,
        is_eval: bool,
    ) -> _Draft:
        """One draw of a request and its answer, in the shape its channel logs."""
        rng = self.rng
        slots = _slots(rng, when)
        problem = rng.randrange(len(intent.problems))
        pii_value = None
        if pii_kind is not None:
            pii_value = _pii_value(rng, pii_kind, slots)
            expiry = f"{rng.randint(1, 12):02d}/{rng.randint(26, 31)}"
            extra = rng.choice(tpl.PII_SENTENCES[pii_kind]).format(v=pii_value, expiry=expiry)
        text = self.user_message(intent, problem, slots, source, extra)
        turns = [(text, self.answer(intent, slots))]
        shape = "completion" if source == "email" or rng.random() < 0.1 else "chat"
        if is_eval:
            shape = rng.choice(("completion", "chat"))
        elif shape == "chat" and not single_turn and rng.random() < 0.25:
            question, reply = rng.choice(intent.followups)
            turns.append((question.format_map(slots), self.answer(intent, slots, reply)))
        system = None if is_eval or rng.random() < 0.2 else tpl.SYSTEM_PROMPTS[source]
        return _Draft(
            ref=next(self._refs),
            when=when,
            user_id="",
            conversation_id="",
            source=source,
            body=self.body(turns, shape, system),
            intent=intent,
            slots=slots,
            problem=problem,
            pii_value=pii_value,
        )

    def clean_feedback(self) -> dict[str, Any]:
        """Ratings 3-5 and thumbs-up only: negative feedback is planted, so it is in the truth."""
        rng, out = self.rng, dict[str, Any]()
        if rng.random() < 0.25:
            out["rating"] = rng.choices((3, 4, 5), (2, 4, 5))[0]
        if rng.random() < 0.15:
            out["thumbs"] = "up"
        return out

    def copy_of(self, orig: _Draft, body: dict[str, Any], label: str, target: int | str) -> _Draft:
        """A record with ``body``: same user and channel as ``orig``, new conversation, later."""
        self.guard.add(orig.key, body)
        return _Draft(
            ref=next(self._refs),
            when=self.later(orig.when),
            user_id=orig.user_id,
            conversation_id=self.new_id("c-", 10),
            source=orig.source,
            body=body,
            intent=orig.intent,
            slots=orig.slots,
            problem=orig.problem,
            feedback=self.clean_feedback(),
            label=label,
            target=target,
        )

    def near_body(self, body: dict[str, Any], against: str) -> dict[str, Any] | None:
        """``body`` with a few words of its first user turn changed, Jaccard ≥ 0.8 to ``against``.

        Edits are random, so each candidate is measured and retried (fewer edits after a while);
        a normalized text equal to the original would be an exact duplicate, so it is refused.
        """
        original = _first_user(body)
        for attempt in range(60):
            k = self.rng.randint(1, 3) if attempt < 30 else 1
            cand = _with_first_user(body, _edit_words(self.rng, original, k))
            text = _text(cand)
            if normalize(text) != normalize(against) and jaccard(text, against) >= NEAR_MIN_JACCARD:
                return cand
        return None

    def leak(self, item: _Draft, body: dict[str, Any], label: str, eval_id: str) -> _Draft:
        """An interaction from a training user that carries an eval item's content."""
        draft = self.fresh()
        self.guard.add(item.key, body)
        draft.body, draft.label, draft.target = body, label, eval_id
        draft.intent, draft.slots, draft.problem = item.intent, item.slots, item.problem
        return draft

    def paraphrase_body(self, item: _Draft) -> dict[str, Any] | None:
        """The eval item's request and answer reworded: same intent and slots, other words."""
        intent, slots = item.intent, item.slots
        for _ in range(10):
            opener = self.rng.choice(tpl.OPENERS["chat_widget"])
            text = " ".join(p for p in (opener, intent.problems[item.problem][1]) if p)
            reply = self.rng.choice(intent.paraphrase_replies)
            turns = [(text.format_map(slots), self.answer(intent, slots, reply))]
            body = self.body(turns, self.rng.choice(("completion", "chat")), None)
            if jaccard(_text(body), _text(item.body)) <= PARAPHRASE_MAX_JACCARD:
                return body
        return None

    def low_quality(self, kind: str) -> _Draft:
        """Junk a quality filter must catch: an empty answer, mash, a loop, a pasted blob."""
        rng = self.rng
        if kind == "base64_blob":
            blob = base64.b64encode(rng.randbytes(rng.randint(1_500, 4_000))).decode()
            suffix = f"\n\nScreenshot attached:\ndata:image/png;base64,{blob}"
            draft = self.fresh(intent=_INTENTS["app_bug"], suffix=suffix, single_turn=True)
        else:
            draft = self.fresh(single_turn=True)
        if kind == "empty_reply":
            draft.body = _with_last_answer(draft.body, "")
        elif kind == "keyboard_mash":
            mash = _mash(rng, rng.randint(40, 90))
            draft.body = {"prompt": mash, "completion": _mash(rng, rng.randint(5, 15))}
        elif kind == "repeated_lines":
            line = rng.choice(draft.intent.replies).format_map(draft.slots).split(". ")[0] + "."
            draft.body = _with_last_answer(draft.body, "\n".join([line] * rng.randint(15, 30)))
        draft.label, draft.feedback = f"low_quality:{kind}", {}
        return draft

    def negative(self, corrected: bool) -> _Draft:
        """A wrong answer (a confusable intent) with thumbs-down, and sometimes the right one."""
        draft = self.fresh(single_turn=True)
        right = _last_answer(draft.body)
        wrong_intent = _INTENTS[tpl.CONFUSABLE[draft.intent.name]]
        draft.body = _with_last_answer(draft.body, self.answer(wrong_intent, draft.slots))
        draft.feedback = {"thumbs": "down"}
        if self.rng.random() < 0.5:
            draft.feedback["rating"] = self.rng.choice((1, 2))
        if corrected:
            draft.feedback["correction"] = right
        draft.label = "corrected" if corrected else "thumbs_down"
        return draft

    def over_long(self) -> _Draft:
        """A customer pasting a whole statement into a message: well over 20,000 characters."""
        rng, lines = self.rng, ["Here is my statement so you can see the charges:"]
        balance, day = rng.uniform(2_000, 9_000), self.start - timedelta(days=120)
        while sum(len(line) + 1 for line in lines) < OVER_LONG_CHARS + 2_000:
            day += timedelta(hours=rng.randint(3, 30))
            amount = rng.uniform(3, 240)
            balance -= amount
            kind, merchant = rng.choice(tpl.STATEMENT_LINES), rng.choice(tpl.MERCHANTS).upper()
            lines.append(
                f"{day:%Y-%m-%d}  {kind}  {merchant}  -{amount:,.2f}  balance {balance:,.2f}"
            )
        draft = self.fresh(intent=_INTENTS["dispute_charge"], suffix="\n\n" + "\n".join(lines))
        draft.label, draft.feedback = "over_long", {}
        return draft


# --------------------------------------------------------------------------- the plan


def plan_counts(n_records: int) -> dict[str, int]:
    """How many interactions carry each planted phenomenon (the rest are clean)."""
    return {k: max(low, round(n_records * rate)) for k, (rate, low) in PLAN_RATES.items()}


def _take(pool: list[_Draft], make: Callable[[_Draft], _Draft | None]) -> _Draft:
    """The first success of ``make`` over items popped from ``pool`` (each item used once)."""
    while pool:
        out = make(pool.pop())
        if out is not None:
            return out
    raise RuntimeError("not enough candidates to plant the requested phenomena")


def _check_args(n_users: int, n_records: int, days: int) -> None:
    if n_records < MIN_RECORDS:
        raise ValueError(f"n_records must be at least {MIN_RECORDS}, got {n_records}")
    if n_users < 1 or days < 1:
        raise ValueError(f"n_users and days must be at least 1, got {n_users} and {days}")


def _eval_set(gen: _Generator, n_users: int, n_eval: int) -> list[_Draft]:
    """Held-out items from users (and so conversations) that never appear in the interactions."""
    users = [gen.new_id("u-", 8) for _ in range(max(2, n_users // 10))]
    items = [gen.fresh(users=users, is_eval=True) for _ in range(n_eval)]
    items.sort(key=lambda d: (d.when, d.ref))
    return items


def generate(seed: int, n_users: int, n_records: int, start: datetime, days: int) -> GeneratedData:
    """Interactions (exactly ``n_records``), a ~10% eval set, documents and the planted truth."""
    _check_args(n_users, n_records, days)
    gen = _Generator(seed, n_users, start, days)
    plan = plan_counts(n_records)
    n_leaks = plan["eval_copy"] + plan["eval_near"] + plan["eval_paraphrase"] + plan["canary"]
    items = _eval_set(gen, n_users, max(round(n_records * 0.1), n_leaks + 5))
    eval_ids = {d.ref: f"eval-{i:04d}" for i, d in enumerate(items, start=1)}
    canary = CANARY_PREFIX + f"{gen.rng.getrandbits(128):032x}"
    drafts = [gen.fresh() for _ in range(n_records - sum(plan.values()))]
    drafts += _duplicates(gen, drafts, plan)
    drafts += _eval_leaks(gen, items, eval_ids, plan, canary)
    drafts += _record_problems(gen, plan)
    return _finish(drafts, items, eval_ids, canary)


def clean_traffic(
    seed: int,
    n_records: int,
    start: datetime,
    days: int = 7,
    intents: Sequence[str] | None = None,
    prefix: str = "t",
    weights: Mapping[str, float] | None = None,
    priorities: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """``n_records`` clean interactions of ``intents`` (default all), in time order.

    No planted problems: a week of ordinary traffic for the loop's later rounds and for
    measuring the drift trigger (a held-back intent appearing is a new topic). ``weights``
    overrides how often each intent comes (a wave of one kind of request), ``priorities``
    the priority the answers give an intent (a triage rule changed). Each row's
    ``meta.intent`` names its intent. Ids are ``PREFIX-000001`` onwards, so weeks with
    different prefixes never collide.
    """
    pool = [_INTENTS[name] for name in intents] if intents else list(tpl.INTENTS)
    odds = [weights.get(i.name, i.weight) if weights else i.weight for i in pool]
    gen = _Generator(seed, max(20, n_records // 7), start, days)
    drafts = [gen.fresh(intent=gen.rng.choices(pool, odds)[0]) for _ in range(n_records)]
    drafts.sort(key=lambda d: (d.when, d.ref))
    rows = []
    for i, d in enumerate(drafts, start=1):
        row = _row(d, f"{prefix}-{i:06d}")
        if priorities and d.intent.name in priorities:
            row = _with_priority(row, priorities[d.intent.name])
        rows.append({**row, "meta": {"intent": d.intent.name}})
    return rows


def _with_priority(row: dict[str, Any], priority: str) -> dict[str, Any]:
    """The row with every answer's ticket priority replaced."""

    def fix(answer: str) -> str:
        ticket = json.loads(answer)
        return json.dumps({**ticket, "priority": priority}, ensure_ascii=False)

    if "completion" in row:
        return {**row, "completion": fix(row["completion"])}
    messages = [{**m, "content": fix(m["content"])} if m["role"] == "assistant" else m
                for m in row["messages"]]  # fmt: skip
    return {**row, "messages": messages}


def _near_copy(rng: random.Random, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with two edits to its first user turn, or one where two leave Jaccard < 0.8."""
    original = _text(body)
    for k in (2, 2, 2, 1, 1, 1):
        cand = _with_first_user(body, _edit_words(rng, _first_user(body), k))
        if jaccard(_text(cand), original) >= NEAR_MIN_JACCARD:
            return cand
    return cand


def leak_attempts(
    seed: int, eval_items: Sequence[dict[str, Any]], prefix: str = "leak"
) -> list[dict[str, Any]]:
    """Eval items sent back as traffic the ways people do it: a copy, a copy with a few words
    changed, and the item pasted into a longer message ("pls help with this one").

    A near copy stays a near copy (5-gram Jaccard ≥ 0.8 with the item, as the check defines
    one): two edits in a 30-word message already make it a paraphrase, which only the
    semantic check can catch, and that check is off for suites as templated as the demo's."""
    rng = random.Random(seed)
    rows = []
    for k, item in enumerate(eval_items):
        body: dict[str, Any] = {
            key: item[key] for key in ("messages", "prompt", "completion") if key in item
        }
        kind = ("copy", "near_copy", "pasted")[k % 3]
        if kind == "near_copy":
            body = _near_copy(rng, body)
        elif kind == "pasted":
            body = _with_first_user(body, "pls help, a customer sent me this and I need the "
                                    "answer fast:\n\n" + _first_user(body))  # fmt: skip
        rows.append({"id": f"{prefix}-{k:04d}", **body, "user_id": f"{prefix}-user-{k}",
                     "source": "chat_widget", "created_at": item.get("created_at"),
                     "meta": {"leak": kind, "eval_id": item["id"]}})  # fmt: skip
    return rows


def _duplicates(gen: _Generator, clean: list[_Draft], plan: dict[str, int]) -> list[_Draft]:
    """Re-sent copies of clean records, verbatim or with a few words changed (one per original)."""
    originals = gen.rng.sample(clean, len(clean))
    out = []
    for _ in range(plan["exact_dup"]):
        orig = originals.pop()
        out.append(gen.copy_of(orig, copy.deepcopy(orig.body), "exact_dup", orig.ref))

    def near(orig: _Draft) -> _Draft | None:
        body = gen.near_body(orig.body, _text(orig.body))
        return None if body is None else gen.copy_of(orig, body, "near_dup", orig.ref)

    return out + [_take(originals, near) for _ in range(plan["near_dup"])]


def _eval_leaks(
    gen: _Generator,
    items: list[_Draft],
    eval_ids: dict[int, str],
    plan: dict[str, int],
    canary: str,
) -> list[_Draft]:
    """Eval items copied, edited and paraphrased into the traffic, and the canary: one item each."""
    pool = gen.rng.sample(items, len(items))
    canary_item = pool.pop()
    text = _first_user(canary_item.body) + f"\n\nCase reference: {canary}"
    canary_item.body = _with_first_user(canary_item.body, text)
    makers: dict[str, Callable[[_Draft], dict[str, Any] | None]] = {
        "eval_copy": lambda d: copy.deepcopy(d.body),
        "eval_near": lambda d: gen.near_body(d.body, _text(d.body)),
        "eval_paraphrase": gen.paraphrase_body,
    }
    out = []
    for label, body_of in makers.items():
        make = _leak_maker(gen, label, body_of, eval_ids)
        out += [_take(pool, make) for _ in range(plan[label])]
    canary_draft = gen.fresh(extra=f"My case reference is {canary}.")
    canary_draft.label, canary_draft.target = "canary", eval_ids[canary_item.ref]
    return [*out, canary_draft]


def _leak_maker(
    gen: _Generator,
    label: str,
    body_of: Callable[[_Draft], dict[str, Any] | None],
    eval_ids: dict[int, str],
) -> Callable[[_Draft], _Draft | None]:
    """For ``_take``: an interaction carrying ``body_of(item)``, or None when that failed."""

    def make(item: _Draft) -> _Draft | None:
        body = body_of(item)
        return None if body is None else gen.leak(item, body, label, eval_ids[item.ref])

    return make


def _record_problems(gen: _Generator, plan: dict[str, int]) -> list[_Draft]:
    """PII, junk, negative feedback, an over-long and an empty record: every kind in turn."""
    out = []
    for i in range(plan["pii"]):
        kind = PII_KINDS[i % len(PII_KINDS)]
        draft = gen.fresh(pii_kind=kind)
        draft.label = f"pii:{kind}"
        out.append(draft)
    kinds = LOW_QUALITY_KINDS
    out += [gen.low_quality(kinds[i % len(kinds)]) for i in range(plan["low_quality"])]
    out += [gen.negative(corrected=False) for _ in range(plan["thumbs_down"])]
    out += [gen.negative(corrected=True) for _ in range(plan["corrected"])]
    out += [gen.over_long() for _ in range(plan["over_long"])]
    for _ in range(plan["empty"]):
        empty = gen.fresh(single_turn=True)
        empty.body, empty.feedback, empty.label = {"prompt": "", "completion": ""}, {}, "empty"
        out.append(empty)
    return out


def _row(draft: _Draft, record_id: str) -> dict[str, Any]:
    """The JSONL object: id, content shape, then metadata in the order of ``records``."""
    return {
        "id": record_id,
        **draft.body,
        "user_id": draft.user_id,
        "conversation_id": draft.conversation_id,
        "source": draft.source,
        "created_at": draft.when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        **draft.feedback,
    }


def _finish(
    drafts: list[_Draft], items: list[_Draft], eval_ids: dict[int, str], canary: str
) -> GeneratedData:
    """Order interactions by time, give them ids, and resolve the truth to those ids."""
    drafts.sort(key=lambda d: (d.when, d.ref))
    ids = {d.ref: f"i-{i:06d}" for i, d in enumerate(drafts, start=1)}
    truth: dict[str, str] = {}
    for d in drafts:
        if d.label is None:
            continue
        target = ids[d.target] if isinstance(d.target, int) else d.target
        truth[ids[d.ref]] = d.label if target is None else f"{d.label}:{target}"
    return GeneratedData(
        interactions=[_row(d, ids[d.ref]) for d in drafts],
        eval_items=[_row(d, eval_ids[d.ref]) for d in items],
        documents=[{"id": name, "text": text} for name, text in tpl.DOCUMENTS],
        truth=truth,
        canary=canary,
        pii_values={ids[d.ref]: d.pii_value for d in drafts if d.pii_value is not None},
    )


# --------------------------------------------------------------------------- output


def files_in(out_dir: Path) -> dict[str, Path]:
    """Where :func:`write` puts each of its files in ``out_dir``."""
    return {
        "interactions": out_dir / "interactions.jsonl",
        "eval": out_dir / "eval.jsonl",
        "documents": out_dir / "documents.jsonl",
        "truth": out_dir / "truth.json",
    }


def write(data: GeneratedData, out_dir: Path) -> dict[str, Path]:
    """Write the four files, each atomically (temp file + rename); return their paths."""
    paths = files_in(out_dir)
    write_jsonl(paths["interactions"], data.interactions)
    write_jsonl(paths["eval"], data.eval_items)
    write_jsonl(paths["documents"], data.documents)
    with atomic_writer(paths["truth"]) as fh:
        fh.write(orjson.dumps(data.truth, option=orjson.OPT_INDENT_2) + b"\n")
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tuneloop.demo.generate OUT_DIR [--seed 0] [--records 2000] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m tuneloop.demo.generate",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--users", type=int, default=None, help="default: records / 8")
    parser.add_argument("--start", default="2025-01-06", help="ISO date or time (UTC)")
    parser.add_argument("--days", type=int, default=28)
    args = parser.parse_args(argv)
    users = args.users if args.users is not None else max(5, args.records // 8)
    start = datetime.fromisoformat(args.start)
    data = generate(args.seed, users, args.records, start, args.days)
    paths = write(data, args.out_dir)
    kinds = Counter(label.split(":")[0] for label in data.truth.values())
    print(f"{len(data.interactions)} interactions, {len(data.eval_items)} eval items")
    print("planted: " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())))
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
