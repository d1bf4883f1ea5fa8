"""Near-duplicate removal: tuneloop vs datasketch MinHashLSH on the same real documents.

Two corpora: ``planted`` (10% near-copies, each of its own original: few candidate pairs) and
``clustered`` (30% near-copies in clusters of 2–50: candidate pairs grow with the square of a
cluster's size, which is where a dedup engine's pair handling shows).
Usage: python -m bench.dedup_bench [--corpus planted|clustered] [--docs N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench import measure
from bench.corpus import build, build_clustered, true_jaccard

OUT = Path(__file__).parent / "out"


def run_job(job: str, src: Path, tag: str) -> dict[str, Any]:
    out, dups = OUT / f"{tag}.kept.jsonl", OUT / f"{tag}.dups.jsonl"
    result = measure.run_job(job, str(src), str(out), str(dups))
    result["dups_file"] = dups
    return result


def quality(src: Path, dups: Path) -> dict[str, float]:
    """Recall of planted pairs (true J ≥ 0.8) and reported pairs below the threshold."""
    texts = {}
    with src.open("rb") as fh:
        for line in fh:
            obj = json.loads(line)
            texts[obj["id"]] = obj["text"]
    truth = json.loads(src.with_suffix(".truth.json").read_text())
    removed = {}
    with dups.open() as fh:
        for line in fh:
            row = json.loads(line)
            removed[str(row["id"])] = str(row["duplicate_of"])
    planted = [t for t in truth if t["jaccard"] >= 0.8]
    found = sum(1 for t in planted if t["copy"] in removed)
    below = sum(1 for a, b in removed.items() if true_jaccard(texts[a], texts[b]) < 0.8 - 1e-9)
    return {
        "planted_pairs": len(planted),
        "recall": found / len(planted),
        "reported": len(removed),
        "below_threshold": below,
    }


def corpus(n_docs: int, kind: str = "planted") -> Path:
    """The corpus file of this kind and size, built on first use."""
    OUT.mkdir(parents=True, exist_ok=True)
    if kind == "planted":
        src = OUT / f"dedup-{n_docs // 1000}k.jsonl"
        if not src.exists():
            build(src, n_docs=n_docs, planted=n_docs // 10)
        return src
    if kind == "clustered":
        src = OUT / f"dedup-clustered-{n_docs // 1000}k.jsonl"
        if not src.exists():
            build_clustered(src, n_docs=n_docs)
        return src
    raise ValueError(f"unknown corpus kind {kind!r} (planted or clustered)")


TOOLS = {"tuneloop": "tuneloop-dedup", "datasketch MinHashLSH": "datasketch-dedup"}


def run(
    n_docs: int = 100_000, kind: str = "planted", tools: tuple[str, ...] = tuple(TOOLS)
) -> list[dict[str, Any]]:
    """One row per tool: its measured job (seconds, peak RSS from outside) and its quality."""
    src = corpus(n_docs, kind)
    run_job("tuneloop-dedup", src, "warmup")  # compiles the kernels once (cached on disk)
    rows = []
    for name in tools:
        result = run_job(TOOLS[name], src, f"{kind}-{name.split()[0]}")
        rows.append({"tool": name, "corpus": kind, "docs": n_docs, **result})
        rows[-1].update(quality(src, result["dups_file"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=("planted", "clustered"), default="planted")
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--only", choices=tuple(TOOLS), help="run this tool only")
    args = parser.parse_args()
    for row in run(args.docs, args.corpus, (args.only,) if args.only else tuple(TOOLS)):
        row.pop("dups_file")
        print(json.dumps(row))


if __name__ == "__main__":
    main()
