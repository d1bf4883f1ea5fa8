"""How much of a leaked eval item the contamination check catches, by how it was disguised.

Eval items (GSM8K test, MMLU test) are indexed as the workspace indexes them (whole text plus
prompt and reference answer as fields); each item is then leaked once per disguise, the way
people paste text, and each disguised copy is checked. The false-positive rate is the share
of a clean real set (GSM8K train, MMLU dev) flagged against the same index, and templated
traffic (the demo's generated support conversations) checks that shared templates do not flag.

    .venv/bin/python -m bench.disguise [--data ../shared/data] [--latency-items 100000]
                                       [--no-semantic] [--mmlu-sample 2000]

"lexical checks" counts the matches of every method but ``semantic`` (exact, canary, minhash,
13-gram ``ngram``, ``contains``); "with the semantic check" adds it, its threshold calibrated
for the suite from the suite's own nearest neighbours: the same run, so the two columns differ
by that check alone. Clean sets are checked twice: whole records (question and answer) and the
questions alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from tuneloop.contamination.check import Checker, Embedder, Match, strongest
from tuneloop.contamination.fields import ItemFields, fields_of
from tuneloop.contamination.index import IndexSettings, build_index
from tuneloop.contamination.semantic import MiniLMEmbedder
from tuneloop.records import record_from_obj

from bench.reword import reword


@dataclass(frozen=True)
class Item:
    """One eval item as the eval store holds it: a user question and the reference answer."""

    id: str
    prompt: str
    answer: str

    @property
    def text(self) -> str:
        return f"{self.prompt}\n{self.answer}"


# --- the disguises -----------------------------------------------------------------------------

WRAPPERS = [
    "Question: {q}\nAnswer: {a}",
    "Q: {q}\nA: {a}",
    "### Question\n{q}\n\n### Answer\n{a}",
    "QUESTION - {q} ANSWER - {a}",
    "Problem: {q}\n\nSolution: {a}",
]
PASTES = [
    "pls help with my homework: {q} thanks",
    "Can you solve this for me?\n\n{q}\n\nI got a different number than my friend.",
    "hey, quick one. {q} explain step by step please",
    "My teacher gave us this today and I'm stuck:\n{q}\nWhat's the trick here? Thank you so "
    "much, I have a test on Friday and I really want to understand it.",
    "{q}",
    "I'm preparing for an exam and found this practice question online. {q} Could you walk "
    "me through the reasoning and also tell me what topic this falls under?",
    "Translate the reasoning into simple words: {q}",
]
FILLER = [
    "the",
    "a",
    "of",
    "to",
    "and",
    "my",
    "your",
    "this",
    "that",
    "really",
    "just",
    "also",
    "very",
    "some",
    "more",
    "please",
    "here",
    "then",
    "so",
    "well",
    "okay",
    "maybe",
    "about",
    "into",
    "over",
    "under",
]


def exact(item: Item, rng: random.Random) -> str:
    return item.text


def _thousands(text: str, rng: random.Random) -> str:
    """Add or strip digit-group separators: "1000" <-> "1,000"."""
    if rng.random() < 0.5:
        return re.sub(r"\b(\d{1,3})(\d{3})\b", r"\1,\2", text)
    return re.sub(r"(?<=\d),(?=\d{3})", "", text)


def _spacing(text: str, rng: random.Random) -> str:
    words = text.split()
    seps = [rng.choice([" ", "  ", "\n", " \t"]) for _ in words]
    return "".join(w + s for w, s in zip(words, seps, strict=True)).strip()


def _punctuation(text: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return re.sub(r"[^\w\s]", "", text)
    return re.sub(r"([.?!])", r" \1\1 ", text).replace(",", " ;")


def _case(text: str, rng: random.Random) -> str:
    return rng.choice([str.upper, str.lower, str.title, str.swapcase])(text)


def reformatted(item: Item, rng: random.Random) -> str:
    """A wrapper and 1-3 of: case, spacing, punctuation, number formatting."""
    text = rng.choice(WRAPPERS).format(q=item.prompt, a=item.answer)
    edits = [_case, _spacing, _punctuation, _thousands]
    for edit in rng.sample(edits, rng.randint(1, 3)):
        text = edit(text, rng)
    return text


def near_copy(item: Item, rng: random.Random) -> str:
    """A few (2-4) words of the whole item replaced by other words."""
    return _replace_words(item.text, rng.randint(2, 4), rng)


def _replace_words(text: str, k: int, rng: random.Random) -> str:
    """``text`` with ``k`` of its plain words (letters only) replaced by filler words."""
    words = text.split(" ")
    plain = [i for i, w in enumerate(words) if w.isalpha()]
    for i in rng.sample(plain, min(len(plain), k)):
        words[i] = rng.choice(FILLER)
    return " ".join(words)


def question_alone(item: Item, rng: random.Random) -> str:
    """The prompt without its answer, pasted into a longer message."""
    text = rng.choice(PASTES).format(q=item.prompt)
    return text.lower() if rng.random() < 0.3 else text


def answer_alone(item: Item, rng: random.Random) -> str:
    """The reference answer without its question, as if a user pasted a worked solution."""
    return f"Is this solution right?\n{item.answer}\nthanks!"


def question_near_copy(item: Item, rng: random.Random) -> str:
    """The prompt alone, one or two words changed, pasted into a message."""
    return "pls help: " + _replace_words(item.prompt, rng.randint(1, 2), rng)


def scrambled(item: Item, rng: random.Random) -> str:
    """Sentences shuffled and ~1 word in 5 replaced by filler: garbled, lexical checks miss it."""
    sentences = re.split(r"(?<=[.?!])\s+", item.prompt)
    rng.shuffle(sentences)
    words = " ".join(sentences).split(" ")
    for i in rng.sample(range(len(words)), len(words) // 5):
        words[i] = rng.choice(FILLER)
    return " ".join(words)


def reworded_question(item: Item, rng: random.Random) -> str:
    """The prompt reworded (bench/reword.py): numbers and names kept, lexical checks miss it."""
    return reword(item.prompt, rng)


def reworded_with_answer(item: Item, rng: random.Random) -> str:
    """The reworded prompt followed by the item's own reference answer."""
    return f"{reword(item.prompt, rng)}\n{item.answer}"


DISGUISES: list[tuple[str, Callable[[Item, random.Random], str], str]] = [
    ("exact copy", exact, "100%"),
    ("reformatted (case, spacing, punctuation, numbers, Q:/A: wrappers)", reformatted, ">= 99%"),
    ("near copy (2-4 words replaced)", near_copy, ">= 95%"),
    ("question alone pasted into a longer message", question_alone, ">= 95%"),
    ("question alone, 1-2 words replaced, pasted", question_near_copy, "-"),
    ("answer alone pasted", answer_alone, "-"),
    ("question shuffled, 1 word in 5 replaced by filler", scrambled, "-"),
    ("reworded question (numbers and names kept)", reworded_question, ">= 90%"),
    ("reworded question followed by its answer", reworded_with_answer, "-"),
]


# --- data --------------------------------------------------------------------------------------


def gsm8k(path: Path, prefix: str) -> list[Item]:
    with path.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [Item(f"{prefix}{i}", r["question"], r["answer"]) for i, r in enumerate(rows)]


def mmlu(folder: Path, prefix: str) -> list[Item]:
    """Question + lettered choices as the prompt, the right choice as the answer."""
    items = []
    for path in sorted(folder.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                choices = [row[f"choice{k}"] for k in range(4)]
                listed = "\n".join(f"{'ABCD'[k]}. {c}" for k, c in enumerate(choices))
                right = int(row["answer"])
                answer = f"{'ABCD'[right]}. {choices[right]}"
                items.append(Item(f"{prefix}{len(items)}", f"{row['question']}\n{listed}", answer))
    return items


def checker_for(
    items: Sequence[Item], settings: IndexSettings, embedder: Embedder | None = None
) -> Checker:
    """The items indexed as the workspace indexes a suite: fields, and (with ``embedder``) each
    prompt's embedding, the suite's semantic threshold calibrated from them."""
    fields = [ItemFields(it.prompt, it.answer) for it in items]
    ids, texts = [it.id for it in items], [it.text for it in items]
    vectors = embedder.embed([it.prompt for it in items]) if embedder is not None else None
    return Checker(build_index(settings, ids, texts, "bench", (), vectors, fields), embedder)


# --- measuring ---------------------------------------------------------------------------------


def _caught(matches: list[Match], eval_id: str, lexical: bool) -> bool:
    return any(m.eval_id == eval_id and not (lexical and m.method == "semantic") for m in matches)


def recall_rows(checker: Checker, items: Sequence[Item], seed: int) -> list[dict[str, object]]:
    """Per disguise: the share caught by the lexical checks and by all checks (one run)."""
    rows = []
    for name, make, goal in DISGUISES:
        rng = random.Random(f"{seed}-{name}")
        texts = [make(it, rng) for it in items]
        found = checker.check_batch(texts)
        pairs = list(zip(found, items, strict=True))
        lexical = sum(_caught(f, it.id, True) for f, it in pairs)
        caught = sum(_caught(f, it.id, False) for f, it in pairs)
        how = Counter(m.field or m.method for f in found if (m := strongest(f)))
        rows.append({"disguise": name, "n": len(items), "lexical": lexical / len(items),
                     "caught": caught / len(items), "goal": goal, "how": dict(how)})  # fmt: skip
    return rows


def false_positives(checker: Checker, clean: Sequence[str]) -> tuple[float, Counter[str], list]:
    found = checker.check_batch(list(clean))
    flagged = [(t, strongest(f)) for t, f in zip(clean, found, strict=True) if f]
    by = Counter(f"{m.method}:{m.field}" if m.field else m.method for _, m in flagged if m)
    return len(flagged) / max(len(clean), 1), by, flagged[:5]


def templated(
    settings: IndexSettings, embedder: Embedder | None, n: int = 4000, eval_share: float = 0.1
) -> dict[str, object]:
    """The demo's support traffic: a tenth as eval items (one suite), the rest checked."""
    from tuneloop.demo.generate import clean_traffic

    rows = clean_traffic(11, n, datetime(2026, 1, 5))
    records = [record_from_obj({k: v for k, v in r.items() if k != "meta"}) for r in rows]
    cut = int(len(records) * eval_share)
    evals, train = records[:cut], records[cut:]
    texts, fields = [r.content_text for r in evals], [fields_of(r) for r in evals]
    vectors = embedder.embed([f.prompt or t for t, f in zip(texts, fields, strict=True)]) if (
        embedder is not None) else None  # fmt: skip
    index = build_index(settings, [r.id for r in evals], texts, "t", (), vectors, fields)
    found = Checker(index, embedder).check_batch([r.content_text for r in train])
    by = Counter(
        m.method + (f":{m.field}" if m.field else "") for f in found if (m := strongest(f))
    )
    calibration = {k: c.to_dict() for k, c in index.calibration.items()}
    return {"eval_items": len(evals), "checked": len(train), "flagged": dict(by),
            "semantic": calibration}  # fmt: skip


def synthetic(rng: random.Random, n_items: int) -> tuple[Callable[[int], str], list[Item]]:
    """A word maker over a 30,000-word vocabulary, and ``n_items`` items made of its words."""
    vocab = [f"w{k}" for k in range(30_000)]

    def words(k: int) -> str:
        return " ".join(rng.choices(vocab, k=k))

    items = [Item(f"s{i}", words(rng.randint(20, 60)), words(rng.randint(30, 120)))
             for i in range(n_items)]  # fmt: skip
    return words, items


def latency(settings: IndexSettings, n_items: int, queries: int, seed: int) -> dict[str, float]:
    """p50/p99 of one-record lexical checks against ``n_items`` synthetic items with fields."""
    rng = random.Random(seed)
    words, items = synthetic(rng, n_items)
    start = time.perf_counter()
    checker = checker_for(items, settings)
    build = time.perf_counter() - start
    probes = [question_alone(rng.choice(items), rng) if k % 3 == 0 else words(rng.randint(20, 300))
              for k in range(queries)]  # fmt: skip
    for text in probes[:200]:
        checker.check(text)
    ms = _timed(checker.check, probes)
    return {"eval_items": n_items, "build_s": round(build, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3)}  # fmt: skip


def semantic_latency(embedder: Embedder, texts: Sequence[str], n_items: int) -> dict[str, float]:
    """What the semantic check adds per record on this machine: embedding one record alone
    (the ingest latency path), per record in a batch of 256 (bulk ingest, curation), and the
    dot products against ``n_items`` stored embeddings."""
    embedder.embed(list(texts[:8]))
    one = _timed(lambda t: embedder.embed([t]), texts[:200])
    batch = list(texts[:256])
    t0 = time.perf_counter()
    embedder.embed(batch)
    per_record = (time.perf_counter() - t0) * 1e3 / len(batch)
    stored = np.random.default_rng(0).normal(size=(n_items, 384)).astype(np.float32)
    query = embedder.embed(batch[:1])
    dots = _timed(lambda _: query @ stored.T, range(50))
    return {"embed_one_p50_ms": round(float(np.percentile(one, 50)), 2),
            "embed_one_p99_ms": round(float(np.percentile(one, 99)), 2),
            "embed_batched_ms_per_record": round(per_record, 2),
            f"dot_products_{n_items}_items_p50_ms": round(float(np.percentile(dots, 50)), 2),
            }  # fmt: skip


def _timed(run: Callable[[Any], object], inputs: Sequence[Any] | range) -> np.ndarray:
    times = []
    for x in inputs:
        t0 = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t0)
    return np.array(times) * 1e3


# --- printing ----------------------------------------------------------------------------------


def print_table(title: str, rows: list[dict[str, object]]) -> None:
    print(f"\n{title}")
    print("| disguise | n | lexical checks | with the semantic check | goal | strongest match |")
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        lexical, caught = float(r["lexical"]), float(r["caught"])  # type: ignore[arg-type]
        print(f"| {r['disguise']} | {r['n']} | {lexical:.1%} | {caught:.1%} | {r['goal']} "
              f"| {r['how']} |")  # fmt: skip


def print_fp(name: str, n: int, rate: float, by: Counter[str], examples: list) -> None:
    print(f"false positives on {name}: {rate:.2%} of {n} ({dict(by)})")
    for text, m in examples:
        print(f"    {m}: {text[:140]!r}")


def run_suite(name: str, evals: list[Item], clean: list[Item], settings: IndexSettings,
              embedder: Embedder | None, seed: int, sample: int) -> None:  # fmt: skip
    start = time.perf_counter()
    checker = checker_for(evals, settings, embedder)
    print(f"\n{name}: {len(evals)} eval items indexed in {time.perf_counter() - start:.0f} s; "
          f"calibration {checker.index.calibration}")  # fmt: skip
    probes = random.Random(seed).sample(evals, min(sample, len(evals)))
    print_table(f"{name}: {len(probes)} eval items leaked", recall_rows(checker, probes, seed))
    for label, texts in (("records (question + answer)", [it.text for it in clean]),
                         ("questions alone", [it.prompt for it in clean])):  # fmt: skip
        rate, by, examples = false_positives(checker, texts)
        print_fp(f"{name} clean {label}", len(texts), rate, by, examples)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).parents[1] / "../shared/data")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-gsm8k", action="store_true")
    ap.add_argument("--skip-mmlu", action="store_true")
    ap.add_argument("--mmlu-sample", type=int, default=2000, help="MMLU items leaked (all indexed)")
    ap.add_argument("--no-semantic", action="store_true", help="the lexical checks only")
    ap.add_argument("--latency-items", type=int, default=100_000)
    ap.add_argument("--latency-queries", type=int, default=5_000)
    ap.add_argument("--set", action="append", default=[], help="an IndexSettings field: k=v")
    args = ap.parse_args(argv)
    settings = IndexSettings(**{k: type(getattr(IndexSettings(), k))(v) for k, v in
                                (kv.split("=", 1) for kv in args.set)})  # fmt: skip
    embedder = None if args.no_semantic else MiniLMEmbedder()
    gsm = args.data / "gsm8k"
    if args.skip_gsm8k:
        pass
    elif (gsm / "test.jsonl").exists():
        evals, clean = gsm8k(gsm / "test.jsonl", "test-"), gsm8k(gsm / "train.jsonl", "train-")
        run_suite("GSM8K test (clean set: GSM8K train)", evals, clean, settings, embedder,
                  args.seed, len(evals))  # fmt: skip
    else:
        print(f"no GSM8K at {gsm}: pass --data DIR holding gsm8k/test.jsonl and train.jsonl")
    if not args.skip_mmlu and (args.data / "mmlu" / "test").is_dir():
        evals, clean = (
            mmlu(args.data / "mmlu" / "test", "m-"),
            mmlu(args.data / "mmlu" / "dev", "d-"),
        )
        run_suite("MMLU test (clean set: MMLU dev)", evals, clean, settings, embedder,
                  args.seed, args.mmlu_sample)  # fmt: skip
    print(f"\ntemplated support traffic: {templated(settings, embedder)}")
    if args.latency_items:
        timing = latency(settings, args.latency_items, args.latency_queries, args.seed)
        print(f"single-record lexical check: {timing}")
        if embedder is not None and (gsm / "train.jsonl").exists():
            texts = [it.text for it in gsm8k(gsm / "train.jsonl", "train-")[:256]]
            print(f"semantic check: {semantic_latency(embedder, texts, args.latency_items)}")


if __name__ == "__main__":
    main()
