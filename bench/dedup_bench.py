"""Near-duplicate removal: tuneloop vs datasketch MinHashLSH on the same 100k real documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import measure
from bench.corpus import build, true_jaccard

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


def run(n_docs: int = 100_000) -> list[dict[str, Any]]:
    OUT.mkdir(parents=True, exist_ok=True)
    src = OUT / f"dedup-{n_docs // 1000}k.jsonl"
    if not src.exists():
        build(src, n_docs=n_docs, planted=n_docs // 10)
    run_job("tuneloop-dedup", src, "warmup")  # compiles the kernels once (cached on disk)
    rows = []
    for name, job in (
        ("tuneloop", "tuneloop-dedup"),
        ("datasketch MinHashLSH", "datasketch-dedup"),
    ):
        result = run_job(job, src, name.split()[0])
        rows.append({"tool": name, **result, **quality(src, result["dups_file"])})
    return rows
