"""The demo generator: deterministic, and every planted phenomenon is really there (and only it).

Checks use their own Luhn, mod-97 and 5-gram Jaccard code, not the generator's.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import datetime
from itertools import combinations
from pathlib import Path

import orjson
import pytest

from tuneloop.demo import generate as gen
from tuneloop.demo import templates
from tuneloop.demo.generate import GeneratedData, generate
from tuneloop.records import record_from_obj, text_of
from tuneloop.textnorm import normalize, words

N, START = 600, datetime(2025, 1, 6)


@pytest.fixture(scope="module")
def data() -> GeneratedData:
    return generate(7, 60, N, START, 14)


def grams(text: str) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + 5]) for i in range(max(1, len(w) - 4))}


def j5(a: str, b: str) -> float:
    return len(grams(a) & grams(b)) / len(grams(a) | grams(b))


def luhn(digits: str) -> bool:
    doubled = [int(c) * (1 + i % 2) for i, c in enumerate(reversed(digits))]
    return sum(d - 9 if d > 9 else d for d in doubled) % 10 == 0


def mod97(iban: str) -> bool:
    s = iban.replace(" ", "")
    return int("".join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1


def texts(data: GeneratedData) -> dict[str, str]:
    return {o["id"]: text_of(o) or "" for o in [*data.interactions, *data.eval_items]}


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, data: GeneratedData) -> None:
    again = generate(7, 60, N, START, 14)
    assert again == data
    a, b = gen.write(data, tmp_path / "a"), gen.write(again, tmp_path / "b")
    assert all(a[k].read_bytes() == b[k].read_bytes() for k in a)
    assert generate(8, 60, N, START, 14).interactions != data.interactions


def test_counts_shapes_and_times(data: GeneratedData) -> None:
    assert len(data.interactions) == N and 0.08 * N <= len(data.eval_items) <= 0.15 * N
    kinds = Counter(label.split(":")[0] for label in data.truth.values())
    assert kinds == Counter(gen.plan_counts(N))
    wanted = [f"pii:{k}" for k in gen.PII_KINDS] + [
        f"low_quality:{k}" for k in gen.LOW_QUALITY_KINDS
    ]
    assert set(wanted) <= set(data.truth.values())
    rows = [*data.interactions, *data.eval_items, *data.documents]
    assert len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        record_from_obj(row)  # every row is a valid record
    times = [r["created_at"] for r in data.interactions]
    assert times == sorted(times) and times[0] >= "2025-01-06T" and times[-1] < "2025-01-20T"
    assert {"messages", "prompt"} <= {k for r in data.interactions for k in r}
    assert any(sum(m["role"] == "user" for m in r.get("messages", [])) > 1 for r in rows)


def test_duplicates_and_leaks_are_as_close_as_labelled(data: GeneratedData) -> None:
    text = texts(data)
    for rid, label in data.truth.items():
        kind, _, target = label.partition(":")
        if kind in ("exact_dup", "eval_copy"):
            assert text[rid] == text[target]
        elif kind in ("near_dup", "eval_near"):
            assert j5(text[rid], text[target]) >= 0.8
            assert normalize(text[rid]) != normalize(text[target])
        elif kind == "eval_paraphrase":
            assert j5(text[rid], text[target]) <= 0.3
            intent = orjson.loads(text[rid].rsplit("\n", 1)[1])["intent"]
            assert f'"intent": "{intent}"' in text[target]


def test_leak_attempts_are_copies_near_copies_and_pastes(data: GeneratedData) -> None:
    items = {item["id"]: item for item in data.eval_items}
    leaks = gen.leak_attempts(3, data.eval_items[:30])
    assert Counter(row["meta"]["leak"] for row in leaks) == {"copy": 10, "near_copy": 10,
                                                               "pasted": 10}  # fmt: skip
    for row in leaks:
        source = text_of(items[row["meta"]["eval_id"]]) or ""
        mine = text_of(row) or ""
        if row["meta"]["leak"] == "copy":
            assert mine == source
        elif row["meta"]["leak"] == "near_copy":  # what the check calls a near duplicate
            assert j5(mine, source) >= 0.8 and normalize(mine) != normalize(source), row["id"]
        else:
            assert normalize(source.split("\n")[0]) in normalize(mine)


def test_nothing_unplanned_is_a_near_duplicate(data: GeneratedData) -> None:
    clean = {i: grams(t) for i, t in texts(data).items() if i not in data.truth}
    for (a, ga), (b, gb) in combinations(clean.items(), 2):
        assert len(ga & gb) < 0.8 * len(ga | gb), (a, b)


def test_planted_pii_is_valid_and_only_where_labelled(data: GeneratedData) -> None:
    text = texts(data)
    for rid, label in data.truth.items():
        if label.startswith("pii:"):
            value = data.pii_values[rid]
            assert value in text[rid]
            if label == "pii:CREDIT_CARD":
                assert luhn(re.sub(r"\D", "", value))
            if label == "pii:IBAN":
                assert mod97(value)
    assert set(data.pii_values) == {i for i, lab in data.truth.items() if lab.startswith("pii:")}
    suspicious = re.compile(
        r"@|sk-proj-|\d{3}-\d\d-\d{4}|\d{3}\W\d{3}\W\d{4}|\d(?:[ -]?\d){12}|\d\.\d+\.\d+\.\d"
    )
    for rid, t in text.items():
        if not data.truth.get(rid, "").startswith(("pii:", "low_quality:base64")):
            assert not suspicious.search(t), rid


def test_eval_set_is_held_out_and_truth_resolves(data: GeneratedData) -> None:
    ids, eval_ids = {r["id"] for r in data.interactions}, {r["id"] for r in data.eval_items}
    assert all(i.startswith("eval-") for i in eval_ids)
    for key in ("user_id", "conversation_id"):
        assert not {r[key] for r in data.eval_items} & {r[key] for r in data.interactions}
    assert set(data.truth) <= ids
    targets = {label.partition(":")[2] for label in data.truth.values()}
    assert {t for t in targets if t.startswith(("i-", "eval-"))} <= ids | eval_ids
    assert re.fullmatch(r"TUNELOOP-CANARY-[0-9a-f]{32}", data.canary)
    holders = [i for i, t in texts(data).items() if data.canary in t]
    canary_id = next(i for i, lab in data.truth.items() if lab.startswith("canary:"))
    assert sorted(holders) == sorted([canary_id, data.truth[canary_id].split(":")[1]])


def test_feedback_and_size_phenomena(data: GeneratedData) -> None:
    text, rows = texts(data), {r["id"]: r for r in data.interactions}
    for rid, row in rows.items():
        label = data.truth.get(rid, "")
        assert (row.get("thumbs") == "down") == (label in ("thumbs_down", "corrected"))
        assert ("correction" in row) == (label == "corrected")
        assert (len(text[rid]) > 20_000) == (label == "over_long")
        assert (not text[rid].strip()) == (label == "empty")
        assert row.get("rating", 3) >= 3 or label in ("thumbs_down", "corrected")


def test_every_template_renders() -> None:
    slots = gen._slots(random.Random(0), START)
    shared = [*templates.GENERIC_ASKS, *templates.GENERIC_DETAILS, *templates.REPLY_CLOSINGS]
    for intent in templates.INTENTS:
        strings = [*intent.asks, *intent.details, *intent.replies, *intent.paraphrase_replies]
        strings += [s for pair in (*intent.problems, *intent.followups) for s in pair]
        assert all("{" not in s.format_map(slots) for s in strings + shared), intent.name


def test_cli_writes_the_four_files(tmp_path: Path) -> None:
    assert gen.main([str(tmp_path), "--seed", "3", "--records", "100"]) == 0
    names = {"interactions.jsonl", "eval.jsonl", "documents.jsonl", "truth.json"}
    assert {p.name for p in tmp_path.iterdir()} == names
    truth = orjson.loads((tmp_path / "truth.json").read_bytes())
    lines = (tmp_path / "interactions.jsonl").read_bytes().splitlines()
    assert len(lines) == 100 and set(truth) <= {orjson.loads(x)["id"] for x in lines}
    with pytest.raises(ValueError):
        generate(0, 10, 10, START, 7)
