"""Leaks in chat records: how much the contamination check catches when an eval question
arrives as a user turn, beside the same text checked bare.

Eval sets: GSM8K test and MMLU test, indexed twice: with fields (a prompt and a reference
answer, as chat or prompt/completion eval items are) and as one ``text`` field per item
(question and answer together, as many plain-text eval sets are). Each sampled item is leaked
once per disguise as a chat record (the question pasted into a user turn, alone, with a
generic reply, with its reference answer, reworded; for MMLU also without its choices), and
each record is checked three ways in one run: "bare" (the user turn alone, as a plain text),
"whole record" (the record as one text, without the per-turn and span checks: the check as
it was) and "chat record" (the check as it is). False positives: clean real records (GSM8K
train, MMLU dev, Alpaca, Self-Instruct) as two-turn chats, every flag written out for reading.

    .venv/bin/python -m bench.chat_leaks [--data ../shared/data] [--sample 1000] [--no-semantic]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tuneloop.contamination.check import Checker, Embedder, Match, strongest
from tuneloop.contamination.fields import ItemFields
from tuneloop.contamination.index import IndexSettings, build_index
from tuneloop.contamination.semantic import MiniLMEmbedder
from tuneloop.records import Message, Record

from bench import real_sets
from bench.disguise import PASTES, Item, gsm8k, mmlu, synthetic
from bench.reword import reword

OUT = Path(__file__).parent / "out"
EVAL_TEXT: dict[str, str] = {}  # eval id -> text, for reading the false positives
GENERIC = [
    "Sure! Let's work through it step by step. First, read the question carefully and note "
    "what is given and what is asked. Then set up the relationships between the quantities, "
    "solve for the unknown, and check that the result makes sense in context.",
    "Great question. The key is to break the problem into smaller parts and handle each one "
    "in turn. If you get stuck, try restating it in your own words or drawing a quick sketch.",
    "Happy to help! Here is how I would approach it: identify the relevant concept, apply it "
    "to the details you were given, and double-check each step before moving on.",
]

Turns = list[tuple[str, str]]


def stem(prompt: str) -> str:
    """A multiple-choice prompt without its lettered choices (the question a person pastes)."""
    lines = prompt.split("\n")
    kept = [x for x in lines if not (len(x) > 2 and x[0] in "ABCD" and x[1:3] == ". ")]
    return "\n".join(kept)


def _paste(q: str, rng: random.Random) -> str:
    return rng.choice(PASTES).format(q=q)


def alone(item: Item, rng: random.Random) -> Turns:
    return [("user", _paste(item.prompt, rng))]


def with_reply(item: Item, rng: random.Random) -> Turns:
    return [("user", _paste(item.prompt, rng)), ("assistant", rng.choice(GENERIC))]


def with_answer(item: Item, rng: random.Random) -> Turns:
    return [("user", _paste(item.prompt, rng)), ("assistant", item.answer)]


def reworded(item: Item, rng: random.Random) -> Turns:
    return [("user", reword(item.prompt, rng)), ("assistant", rng.choice(GENERIC))]


def no_choices(item: Item, rng: random.Random) -> Turns:
    return [("user", _paste(stem(item.prompt), rng)), ("assistant", rng.choice(GENERIC))]


DISGUISES: list[tuple[str, Callable[[Item, random.Random], Turns]]] = [
    ("question alone in a user turn", alone),
    ("question, then a generic reply", with_reply),
    ("question, then its reference answer", with_answer),
    ("reworded question, then a generic reply", reworded),
]
MC_ONLY = ("question without its choices, then a generic reply", no_choices)


def record(rid: str, turns: Turns) -> Record:
    return Record(id=rid, shape="chat", messages=tuple(Message(r, c) for r, c in turns))


def index_of(
    items: Sequence[Item], settings: IndexSettings, embedder: Embedder | None, as_text: bool
) -> Checker:
    """The items as the workspace indexes them: with fields, or as one text field each."""
    texts = [it.text for it in items]
    fields = None if as_text else [ItemFields(it.prompt, it.answer) for it in items]
    embedded = texts if as_text else [it.prompt for it in items]
    vectors = embedder.embed(embedded) if embedder is not None else None
    index = build_index(settings, [it.id for it in items], texts, "bench", (), vectors, fields)
    return Checker(index, embedder)


def as_before(checker: Checker) -> Checker:
    """The same index checked as before: no span rule (and, by the caller, no per-turn parts)."""
    index = copy.copy(checker.index)
    index.settings = replace(index.settings, span_words=1_000_000)
    return Checker(index, checker.embedder)


def _hit(matches: list[Match], eval_id: str, lexical: bool) -> bool:
    return any(m.eval_id == eval_id and not (lexical and m.method == "semantic") for m in matches)


def recall(
    checker: Checker, items: Sequence[Item], disguises: Sequence[Any], seed: int
) -> list[dict[str, Any]]:
    before = as_before(checker)
    rows = []
    for name, make in disguises:
        rng = random.Random(f"{seed}-{name}")
        recs = [record(it.id, make(it, rng)) for it in items]
        bare = checker.check_batch([r.messages[0].content for r in recs])
        whole = before.check_batch([r.content_text for r in recs])
        now = checker.check_records(recs)
        row: dict[str, Any] = {"disguise": name, "n": len(items)}
        for label, found in (("bare", bare), ("whole", whole), ("chat", now)):
            for lexical in (True, False):
                key = f"{label}_{'lexical' if lexical else 'all'}"
                row[key] = sum(_hit(f, it.id, lexical) for f, it in zip(found, items, strict=True))
        row["how"] = _how(now)
        if make is no_choices:
            row["by_length"] = _by_length(items, now)
        rows.append(row)
    return rows


def _how(found: list[list[Match]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in found:
        if m := strongest(f):
            key = m.method + (f":{m.field}" if m.field else "")
            out[key] = out.get(key, 0) + 1
    return out


LENGTHS = ((0, 10), (10, 20), (20, 40), (40, 10_000))


def _by_length(items: Sequence[Item], found: list[list[Match]]) -> dict[str, str]:
    """Recall of the question without its choices, by the question's length in words."""
    out = {}
    for lo, hi in LENGTHS:
        pairs = [(it, f) for it, f in zip(items, found, strict=True)
                 if lo <= len(stem(it.prompt).split()) < hi]  # fmt: skip
        lexical = sum(_hit(f, it.id, True) for it, f in pairs)
        caught = sum(_hit(f, it.id, False) for it, f in pairs)
        label = f"{lo}-{hi - 1} words" if hi < 10_000 else f"{lo}+ words"
        out[label] = f"{lexical}/{caught} of {len(pairs)}"
    return out


def false_positives(
    checker: Checker, name: str, records: Sequence[Record], flagged: list[dict[str, Any]]
) -> dict[str, Any]:
    found = checker.check_records(records)
    by: dict[str, int] = {}
    for rec, f in zip(records, found, strict=True):
        if m := strongest(f):
            key = m.method + (f":{m.field}" if m.field else "")
            by[key] = by.get(key, 0) + 1
            flagged.append({"set": name, "record": rec.id, "eval_id": m.eval_id,
                            "method": key, "score": m.score, "text": rec.content_text[:500],
                            "eval_text": EVAL_TEXT.get(m.eval_id, "")[:500]})  # fmt: skip
    n = sum(by.values())
    return {"set": name, "records": len(records), "flagged": n,
            "rate": n / max(len(records), 1), "by": by}  # fmt: skip


def print_rows(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    print("| disguise | n | bare text, lexical / all | whole record, lexical / all "
          "| chat record, lexical / all | strongest match |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        n = r["n"]
        cells = [f"{r[f'{k}_lexical'] / n:.1%} / {r[f'{k}_all'] / n:.1%}"
                 for k in ("bare", "whole", "chat")]  # fmt: skip
        print(f"| {r['disguise']} | {n} | {' | '.join(cells)} | {r['how']} |")
        if "by_length" in r:
            print(f"|   by question length (lexical/all caught of n) | | | | {r['by_length']} | |")


def suite(
    name: str,
    evals: list[Item],
    settings: IndexSettings,
    embedder: Embedder | None,
    args: argparse.Namespace,
    multiple_choice: bool,
) -> dict[str, Checker]:
    EVAL_TEXT.update((it.id, it.text) for it in evals)
    probes = random.Random(args.seed).sample(evals, min(args.sample, len(evals)))
    disguises = [*DISGUISES, MC_ONLY] if multiple_choice else DISGUISES
    checkers = {}
    for as_text in (False, True):
        start = time.perf_counter()
        checker = index_of(evals, settings, embedder, as_text)
        shape = "one text field per item" if as_text else "prompt and answer fields"
        took = time.perf_counter() - start
        rows = recall(checker, probes, disguises, args.seed)
        print_rows(f"{name}, {shape} ({len(evals)} items indexed in {took:.0f} s)", rows)
        checkers["text" if as_text else "fields"] = checker
    return checkers


def latency(settings: IndexSettings, n_items: int, queries: int, seed: int) -> dict[str, float]:
    """p50/p99 of one chat record's lexical checks (whole record and user turn) against
    ``n_items`` synthetic items with fields: the ingest path, one record at a time."""
    rng = random.Random(seed)
    words, items = synthetic(rng, n_items)
    checker = index_of(items, settings, None, as_text=False)
    probes = []
    for k in range(queries):
        asked = _paste(rng.choice(items).prompt, rng) if k % 3 == 0 else words(rng.randint(10, 80))
        probes.append(
            record(f"p{k}", [("user", asked), ("assistant", words(rng.randint(20, 250)))])
        )
    for rec in probes[:200]:
        checker.check_records([rec])
    ms = []
    for rec in probes:
        t0 = time.perf_counter()
        checker.check_records([rec])
        ms.append((time.perf_counter() - t0) * 1e3)
    ms.sort()
    return {"eval_items": n_items, "p50_ms": round(ms[len(ms) // 2], 3),
            "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 3)}  # fmt: skip


def semantic_cost(embedder: Embedder, items: Sequence[Item]) -> dict[str, float]:
    """What embedding a two-turn record and its user turn costs (the semantic check of a chat
    record), alone (the ingest path) and in batches of 256 (bulk ingest, curation)."""
    recs = [record(it.id, [("user", it.prompt), ("assistant", it.answer)]) for it in items[:256]]

    def views(rec: Record) -> list[str]:
        return [rec.content_text, rec.messages[0].content]

    embedder.embed(views(recs[0]))
    one = []
    for rec in recs[:100]:
        t0 = time.perf_counter()
        embedder.embed(views(rec))
        one.append((time.perf_counter() - t0) * 1e3)
    one.sort()
    t0 = time.perf_counter()
    embedder.embed([v for rec in recs for v in views(rec)])
    per_record = (time.perf_counter() - t0) * 1e3 / len(recs)
    return {"one_record_p50_ms": round(one[len(one) // 2], 1),
            "one_record_p99_ms": round(one[int(0.99 * (len(one) - 1))], 1),
            "batched_ms_per_record": round(per_record, 1)}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).parents[1] / "../shared/data")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample", type=int, default=1000, help="items leaked per eval set")
    ap.add_argument("--no-semantic", action="store_true")
    ap.add_argument("--span-words", type=int, default=IndexSettings.span_words)
    ap.add_argument("--latency-only", action="store_true")
    args = ap.parse_args(argv)
    settings = IndexSettings(span_words=args.span_words)
    if args.latency_only:
        print(f"lexical checks of one chat record: {latency(settings, 100_000, 3000, args.seed)}")
        if not args.no_semantic:
            items = gsm8k(args.data / "gsm8k" / "train.jsonl", "t")
            print(f"a record and its user turn embedded: {semantic_cost(MiniLMEmbedder(), items)}")
        return
    embedder = None if args.no_semantic else MiniLMEmbedder()
    gsm = suite("GSM8K test", gsm8k(args.data / "gsm8k" / "test.jsonl", "g-"), settings,
                embedder, args, multiple_choice=False)  # fmt: skip
    mm = suite("MMLU test", mmlu(args.data / "mmlu" / "test", "m-"), settings, embedder, args,
               multiple_choice=True)  # fmt: skip
    clean = {
        "GSM8K train": [record(f"gtrain-{i}", [("user", it.prompt), ("assistant", it.answer)])
                        for i, it in enumerate(gsm8k(args.data / "gsm8k" / "train.jsonl", "t"))],
        "MMLU dev": [record(f"mdev-{i}", [("user", it.prompt), ("assistant", it.answer)])
                     for i, it in enumerate(mmlu(args.data / "mmlu" / "dev", "d"))],
        "Alpaca": list(real_sets.records("alpaca (llama_factory_demo)", args.data)),
        "Self-Instruct": list(real_sets.records("self_instruct", args.data)),
    }  # fmt: skip
    flagged: list[dict[str, Any]] = []
    print("\nfalse positives (two-turn chat records; every flag in bench/out/chat_leaks_fp.jsonl)")
    for against, checkers in (("GSM8K test", gsm), ("MMLU test", mm)):
        for shape, checker in checkers.items():
            for name, recs in clean.items():
                if (name, against) in {("GSM8K train", "MMLU test"), ("MMLU dev", "GSM8K test")}:
                    continue
                r = false_positives(checker, f"{name} vs {against} ({shape})", recs, flagged)
                print(f"- {r['set']}: {r['flagged']} of {r['records']} ({r['rate']:.2%}) {r['by']}")
    OUT.mkdir(exist_ok=True)
    with (OUT / "chat_leaks_fp.jsonl").open("w", encoding="utf-8") as fh:
        for row in flagged:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
