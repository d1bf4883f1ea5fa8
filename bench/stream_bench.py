"""Memory does not grow with the input: dedup of 1M records, peak RSS of the process."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from tuneloop.jsonl import atomic_writer, dumps

from bench import measure
from bench.corpus import _documents, _edit, real_words

OUT = Path(__file__).parent / "out"


def build_large(path: Path, n_docs: int, seed: int = 1) -> None:
    """n_docs real-sentence documents, 5% of them near-copies of earlier ones."""
    rng = random.Random(seed)
    words = real_words(seed=seed)
    with atomic_writer(path) as fh:
        recent: list[str] = []
        for start in range(0, n_docs, 50_000):
            for i, text in enumerate(_documents(words, min(50_000, n_docs - start), rng)):
                if recent and rng.random() < 0.05:
                    text = _edit(rng.choice(recent), rng.randint(1, 4), words, rng)
                recent = [*recent, text][-1000:]
                fh.write(dumps({"id": f"r{start + i}", "text": text}))


def run(n_docs: int = 1_000_000) -> dict[str, Any]:
    OUT.mkdir(parents=True, exist_ok=True)
    src = OUT / f"stream-{n_docs // 1000}k.jsonl"
    if not src.exists():
        build_large(src, n_docs)
    kept, dups = OUT / "stream.kept.jsonl", OUT / "stream.dups.jsonl"
    result = measure.run_job("tuneloop-dedup", str(src), str(kept), str(dups))
    result["input_mb"] = round(src.stat().st_size / 1e6, 1)
    return result
