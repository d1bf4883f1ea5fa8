"""Where the benchmarks find the public data sets, and a one-line answer when they are not there.

The sets are not part of the project (see ../shared/data/README.md): ``--data DIR`` on
``python -m bench.run`` (or ``TUNELOOP_BENCH_DATA=DIR``, which child processes inherit) points at
a folder laid out the same way; the default is ../shared/data beside the project.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "TUNELOOP_BENCH_DATA"
DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ALPACA = "llama_factory_demo/alpaca_en_demo.json"
T0 = "self_instruct/t0_train_50k_data_per_template"
# What each benchmark reads: the dedup corpus draws its sentences from all five sources.
NEEDS = {
    "dedup": ["gsm8k/train.jsonl", "mmlu/test", "bbh/boolean_expressions.json", ALPACA, T0],
    "quality": ["gsm8k/train.jsonl", "mmlu/test", "bbh/boolean_expressions.json", ALPACA, T0],
    "pii": ["gsm8k/train.jsonl", "mmlu/test"],
    "stores": ["gsm8k/train.jsonl"],
    "train": [ALPACA],
    "eval": ["gsm8k/test.jsonl", "mmlu/test"],
    "serve": [ALPACA],
    "privacy": [ALPACA],
    "toxicity": [ALPACA],
}


def root() -> Path:
    """The data folder in use: $TUNELOOP_BENCH_DATA, else ../shared/data."""
    return Path(os.environ.get(ENV) or DEFAULT)


def use(folder: Path) -> None:
    """Point this process and the benchmark processes it starts at ``folder``."""
    os.environ[ENV] = str(folder.resolve())


def missing_message(benches: list[str]) -> str | None:
    """One line naming what the chosen benchmarks need and cannot find, or None."""
    wanted = dict.fromkeys(p for b in benches for p in NEEDS.get(b, []))
    gone = [p for p in wanted if not (root() / p).exists()]
    if not gone:
        return None
    return (
        f"bench: missing under {root()}: {', '.join(gone)}; pass --data DIR (or set {ENV}) "
        "with a folder laid out like ../shared/data (GSM8K, MMLU, BIG-Bench Hard, "
        "LLaMA-Factory's alpaca_en_demo.json, Self-Instruct's T0 files; see its README.md)"
    )
