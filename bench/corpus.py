"""Real text for the benchmarks, from the shared public data sets, with planted near-duplicates.

Documents are 120–180 words of real sentences drawn at random from T0/P3 prompts and
completions, GSM8K, MMLU, BIG-Bench Hard and Alpaca (whatever is present; passages that P3
repeats across templates are taken once). Planted near-duplicates are
copies of random documents with a few words substituted; their true Jaccard similarity over word
5-gram sets is computed here, independently of tuneloop's hashing, so recall and precision can
be checked against it. :func:`build_clustered` makes a duplicate-heavy corpus: ~30% of its
documents are near-copies in clusters of 2–50, where LSH candidate pairs grow with the square
of the cluster size.
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Iterator
from pathlib import Path

from tuneloop.jsonl import atomic_writer, dumps
from tuneloop.textnorm import normalize

from bench import data


def _t0(root: Path) -> Iterator[str]:
    for path in sorted((root / "self_instruct" / "t0_train_50k_data_per_template").glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                obj = json.loads(line)
                yield f"{obj.get('prompt', '')} {obj.get('completion', '')}"


def _gsm8k(root: Path) -> Iterator[str]:
    for name in ("train.jsonl", "test.jsonl"):
        path = root / "gsm8k" / name
        if path.exists():
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    obj = json.loads(line)
                    yield f"{obj['question']} {obj['answer']}"


def _mmlu(root: Path) -> Iterator[str]:
    for path in sorted((root / "mmlu").glob("*/*.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.reader(fh):
                yield " ".join(row[:-1])


def _bbh(root: Path) -> Iterator[str]:
    for path in sorted((root / "bbh").glob("*.json")):
        for ex in json.loads(path.read_text(encoding="utf-8")).get("examples", []):
            yield f"{ex['input']} {ex['target']}"


def _alpaca(root: Path) -> Iterator[str]:
    path = root / "llama_factory_demo" / "alpaca_en_demo.json"
    if path.exists():
        for ex in json.loads(path.read_text(encoding="utf-8")):
            yield f"{ex['instruction']} {ex['input']} {ex['output']}"


def _first_seen(texts: Iterator[str]) -> Iterator[str]:
    """Skip texts that repeat a passage already seen (P3 reuses passages across templates)."""
    seen: set[int] = set()
    for text in texts:
        words = normalize(text).split()
        grams = {hash(tuple(words[i : i + 13])) for i in range(0, max(1, len(words) - 12), 4)}
        if len(grams & seen) * 2 > len(grams):
            continue
        seen |= grams
        yield text


def real_words(root: Path | None = None, seed: int = 0) -> list[str]:
    """Every word of the available real text, records shuffled (words within a record kept)."""
    sources, folder = (_t0, _gsm8k, _mmlu, _bbh, _alpaca), root or data.root()
    texts = list(_first_seen(t for src in sources for t in src(folder)))
    if not texts:
        raise SystemExit(data.missing_message(["dedup"]) or f"bench: no text under {folder}")
    random.Random(seed).shuffle(texts)
    return [w for t in texts for w in t.split()]


def shingle_set(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = normalize(text).split()
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def true_jaccard(a: str, b: str, n: int = 5) -> float:
    x, y = shingle_set(a, n), shingle_set(b, n)
    if not x and not y:
        return 1.0
    return len(x & y) / len(x | y)


def _sentences(words: list[str]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for w in words:
        out[-1].append(w)
        if w[-1:] in ".?!" and len(out[-1]) >= 4:
            out.append([])
    return [s for s in out if s]


def _documents(words: list[str], count: int, rng: random.Random) -> list[str]:
    """Documents of 120–180 words made of real sentences drawn at random from the pool."""
    sentences = _sentences(words)
    docs = []
    for _ in range(count):
        size, doc = rng.randint(120, 180), []
        while len(doc) < size:
            doc.extend(rng.choice(sentences))
        docs.append(" ".join(doc[:size]))
    return docs


def _edit(text: str, k: int, vocab: list[str], rng: random.Random) -> str:
    words = text.split()
    for idx in rng.sample(range(len(words)), min(k, len(words))):
        words[idx] = rng.choice(vocab)
    return " ".join(words)


def _write(out: Path, keyed: list[tuple[float, dict[str, object]]], truth: list[dict]) -> Path:
    """Write documents in the order of their keys, and the truth file beside them."""
    keyed.sort(key=lambda kv: kv[0])
    with atomic_writer(out) as fh:
        for _, doc in keyed:
            fh.write(dumps(doc))
    with atomic_writer(out.with_suffix(".truth.json")) as fh:
        fh.write(json.dumps(truth).encode())
    return out


def _plant(
    base: list[str], orig: int, i: int, words: list[str], rng: random.Random, edits: int = 8
) -> tuple[tuple[float, dict[str, object]], dict[str, object]]:
    """A near-copy of ``base[orig]`` (1–``edits`` words replaced), placed after it, and its
    truth row."""
    copy = _edit(base[orig], rng.randint(1, edits), words, rng)
    position = orig + 0.5 + rng.random() * (len(base) - orig)  # always after its original
    row = {"copy": f"p{i}", "orig": f"d{orig}", "jaccard": true_jaccard(base[orig], copy)}
    return (position, {"id": f"p{i}", "text": copy}), row


def _base(n_base: int, seed: int) -> tuple[list[str], list[str], random.Random]:
    rng = random.Random(seed)
    words = real_words(seed=seed)
    return words, _documents(words, n_base, rng), rng


def build(out: Path, n_docs: int = 100_000, planted: int = 10_000, seed: int = 0) -> Path:
    """Write ``n_docs`` documents (``planted`` of them near-copies) and a truth file beside them."""
    words, base, rng = _base(n_docs - planted, seed)
    keyed: list[tuple[float, dict[str, object]]] = [
        (float(i), {"id": f"d{i}", "text": t}) for i, t in enumerate(base)
    ]
    truth = []
    for i in range(planted):
        doc, row = _plant(base, rng.randrange(len(base)), i, words, rng)
        keyed.append(doc)
        truth.append(row)
    return _write(out, keyed, truth)


LARGEST_CLUSTER = 249


def cluster_sizes(copies: int, rng: random.Random, largest: int = LARGEST_CLUSTER) -> list[int]:
    """Copies per cluster, 1 to ``largest``, log-uniform (many pairs, a few big piles), summing
    to ``copies``: duplicate-heavy corpora have both, and big clusters are what make the
    candidate pairs grow with the square of their size."""
    sizes: list[int] = []
    while sum(sizes) < copies:
        sizes.append(min(round(math.exp(rng.uniform(0.0, math.log(largest)))), largest))
    sizes[-1] -= sum(sizes) - copies
    return [s for s in sizes if s > 0]


def build_clustered(
    out: Path,
    n_docs: int = 100_000,
    dup_share: float = 0.3,
    largest: int = LARGEST_CLUSTER,
    seed: int = 0,
) -> Path:
    """Write ``n_docs`` documents of which ``dup_share`` are near-copies in clusters.

    Each cluster is an original with 1 to ``largest`` near-copies (1–4 words replaced each, so
    most copies are also near each other), spread through the file after it; the truth file has
    one row per copy, as :func:`build` writes. The defaults give about 1.9 million distinct LSH
    candidate pairs on 100,000 documents.
    """
    copies = round(n_docs * dup_share)
    words, base, rng = _base(n_docs - copies, seed)
    keyed: list[tuple[float, dict[str, object]]] = [
        (float(i), {"id": f"d{i}", "text": t}) for i, t in enumerate(base)
    ]
    truth = []
    origs = rng.sample(range(len(base)), len(sizes := cluster_sizes(copies, rng, largest)))
    for orig, size in zip(origs, sizes, strict=True):
        for _ in range(size):
            doc, row = _plant(base, orig, len(truth), words, rng, edits=4)
            keyed.append(doc)
            truth.append(row)
    return _write(out, keyed, truth)
