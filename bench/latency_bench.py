"""Ingest-time contamination check: one record against an index of 100k eval items."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from tuneloop.contamination.check import Checker
from tuneloop.contamination.index import IndexSettings, build_index


def _edit(text: str, rng: random.Random) -> str:
    words = text.split()
    for i in rng.sample(range(len(words)), 3):
        words[i] = "changed"
    return " ".join(words)


def run(src: Path, queries: int = 10_000, seed: int = 0) -> dict[str, Any]:
    texts, ids = [], []
    with src.open("rb") as fh:
        for line in fh:
            obj = json.loads(line)
            ids.append(obj["id"])
            texts.append(obj["text"])
    start = time.perf_counter()
    index = build_index(IndexSettings(), ids, texts, "bench")
    build_seconds = time.perf_counter() - start
    checker = Checker(index)
    rng = random.Random(seed)
    probes = [_edit(rng.choice(texts), rng) if rng.random() < 0.3 else " ".join(
        rng.choice(texts).split()[::-1]) for _ in range(queries)]  # fmt: skip
    for text in probes[:200]:
        checker.check(text)
    latencies = []
    flagged = 0
    for text in probes:
        t0 = time.perf_counter()
        flagged += bool(checker.check(text))
        latencies.append(time.perf_counter() - t0)
    ms = np.array(latencies) * 1e3
    return {
        "eval_items": len(index),
        "index_build_seconds": round(build_seconds, 2),
        "queries": queries,
        "flagged": flagged,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
    }
