"""The public data sets in the data folder, as the chat records a user would feed tuneloop.

Each set is read where it lies (never copied into the project) and turned into one record per
example: the question or instruction as the user turn, the reference answer as the assistant
turn, the way a team fine-tuning on GSM8K or Alpaca would write its JSONL. These are clean,
human-written sets, so whatever a quality filter drops from them is a false positive.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path

from tuneloop.records import Message, Record

Loader = Callable[[Path], Iterator[tuple[str, str]]]


def _jsonl(path: Path) -> Iterator[dict[str, object]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def gsm8k(root: Path) -> Iterator[tuple[str, str]]:
    for name in ("train.jsonl", "test.jsonl"):
        for obj in _jsonl(root / "gsm8k" / name):
            yield str(obj["question"]), str(obj["answer"])


def mmlu(root: Path) -> Iterator[tuple[str, str]]:
    """Question and lettered choices as the prompt, "Answer: B" as the reply."""
    for path in sorted((root / "mmlu").glob("*/*.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                choices = [row[f"choice{i}"] for i in range(4)]
                lines = [f"{'ABCD'[i]}. {c}" for i, c in enumerate(choices)]
                answer = "ABCD"[int(row["answer"])]
                yield "\n".join([row["question"], *lines]), f"Answer: {answer}"


def bbh(root: Path) -> Iterator[tuple[str, str]]:
    for path in sorted((root / "bbh").glob("*.json")):
        for ex in json.loads(path.read_text(encoding="utf-8"))["examples"]:
            yield ex["input"], ex["target"]


def alpaca(root: Path) -> Iterator[tuple[str, str]]:
    path = root / "llama_factory_demo" / "alpaca_en_demo.json"
    for ex in json.loads(path.read_text(encoding="utf-8")):
        yield f"{ex['instruction']}\n{ex['input']}".strip(), ex["output"]


def self_instruct(root: Path) -> Iterator[tuple[str, str]]:
    """The 175 seed tasks and 252 user-oriented ones, one record per instance."""
    for name in ("seed_tasks.jsonl", "user_oriented_instructions.jsonl"):
        for obj in _jsonl(root / "self_instruct" / name):
            for inst in obj["instances"]:  # type: ignore[attr-defined]
                yield f"{obj['instruction']}\n{inst['input']}".strip(), inst["output"]


def t0(root: Path) -> Iterator[tuple[str, str]]:
    """The T0/P3 prompt/completion pairs (55,185 in 294 templates)."""
    folder = root / "self_instruct" / "t0_train_50k_data_per_template"
    for path in sorted(folder.glob("*.jsonl")):
        for obj in _jsonl(path):
            yield str(obj["prompt"]), str(obj["completion"])


def humaneval(root: Path) -> Iterator[tuple[str, str]]:
    for obj in _jsonl(root / "humaneval" / "HumanEval.jsonl.gz"):
        yield str(obj["prompt"]), str(obj["canonical_solution"])


# name → (loader, the file or folder that must exist for it)
SETS: dict[str, tuple[Loader, str]] = {
    "gsm8k": (gsm8k, "gsm8k/train.jsonl"),
    "mmlu": (mmlu, "mmlu/test"),
    "bbh": (bbh, "bbh/boolean_expressions.json"),
    "alpaca (llama_factory_demo)": (alpaca, "llama_factory_demo/alpaca_en_demo.json"),
    "self_instruct": (self_instruct, "self_instruct/seed_tasks.jsonl"),
    "T0/P3 (self_instruct)": (t0, "self_instruct/t0_train_50k_data_per_template"),
    "humaneval": (humaneval, "humaneval/HumanEval.jsonl.gz"),
}


def records(name: str, root: Path) -> Iterator[Record]:
    """The set's examples as two-turn chat records."""
    loader, _ = SETS[name]
    for i, (user, assistant) in enumerate(loader(root)):
        turns = (Message("user", user), Message("assistant", assistant))
        yield Record(id=f"{name.split()[0]}-{i}", shape="chat", messages=turns)
