"""Rehearsal: general prompts answered by the base model itself, mixed into training.

A LoRA trained only on support tickets learns the format so well that it answers "What is the
capital of France?" with a ticket: the task spills over onto everything. Replay cannot help
(earlier rounds are tickets too). Rehearsal adds general prompts with the *base model's own*
greedy answers: on those, the target is what the model did before training, so the adapter is
pulled back to the base model's behaviour outside the task (self-distillation on text, as in
Magpie-style or "SDFT" rehearsal). The prompts are ``train/data/rehearsal_prompts.jsonl``
(written for this project, none of them a forgetting-suite question) or
``train.rehearsal_prompts``.

Answers depend only on the base weights, the prompts and the decoding settings, so they are
generated once and cached (``~/.cache/tuneloop/rehearsal``, like the base model itself);
the cost is paid by the first run on a machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from tuneloop import progress
from tuneloop.jsonl import write_jsonl
from tuneloop.records import Record, read_records, record_from_obj

SOURCE = "rehearsal"


def default_cache() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "tuneloop" / "rehearsal"


def prompt_pool(path: Path | None) -> list[Record]:
    """The prompts (user turns) to rehearse: a file, or the built-in pool."""
    if path is not None:
        return [rec for _, rec in read_records(path)]
    pool = resources.files("tuneloop.train") / "data" / "rehearsal_prompts.jsonl"
    with resources.as_file(pool) as built_in:
        return [rec for _, rec in read_records(built_in)]


@dataclass(frozen=True)
class Rehearsal:
    records: list[Record]
    cache_file: Path
    sha256: str
    seconds: float  # generation time (0 when the answers came from the cache)
    tokens: int  # answer tokens generated now (0 when cached)

    def lineage(self, used: int) -> dict[str, Any]:
        return {"records": used, "pool": len(self.records), "answers_sha256": self.sha256,
                "generated_seconds": round(self.seconds, 1),
                "answer_tokens": self.tokens}  # fmt: skip


def _answer(model: Any, tokenizer: Any, chats: list[list[dict[str, str]]], max_new: int,
            batch: int) -> tuple[list[str], int]:  # fmt: skip
    """Greedy answers, batched with left padding (the order of ``chats`` is kept)."""
    ids = [tokenizer.apply_chat_template(c, tokenize=True, add_generation_prompt=True,
                                         return_dict=False) for c in chats]  # fmt: skip
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers: dict[int, str] = {}
    tokens = 0
    with progress.task("rehearsal: the base model's answers", len(order), "prompts") as advance:
        for start in range(0, len(order), batch):
            group = order[start : start + batch]
            tokens += _answer_group(model, tokenizer, ids, group, max_new, pad, answers)
            advance(len(group))
    return [answers[i] for i in range(len(chats))], tokens


def _answer_group(model: Any, tokenizer: Any, ids: list[list[int]], group: list[int],
                  max_new: int, pad: int, answers: dict[int, str]) -> int:  # fmt: skip
    """Answer one left-padded batch into ``answers``; the answer tokens it generated."""
    import torch  # noqa: PLC0415 - heavy (torch)

    tokens = 0
    width = max(len(ids[i]) for i in group)
    x = torch.full((len(group), width), pad)
    mask = torch.zeros((len(group), width), dtype=torch.long)
    for row, i in enumerate(group):
        x[row, width - len(ids[i]) :] = torch.tensor(ids[i])
        mask[row, width - len(ids[i]) :] = 1
    with torch.inference_mode():
        out = model.generate(input_ids=x, attention_mask=mask, max_new_tokens=max_new,
                             do_sample=False, pad_token_id=pad)  # fmt: skip
    for row, i in enumerate(group):
        new = out[row, width:].tolist()
        if tokenizer.eos_token_id in new:
            new = new[: new.index(tokenizer.eos_token_id)]
        tokens += len(new)
        answers[i] = _whole_sentences(tokenizer.decode(new, skip_special_tokens=True).strip())
    return tokens


def _whole_sentences(text: str) -> str:
    """An answer cut by the token limit, back to its last full sentence (when that keeps most
    of it): training on a sentence cut in the middle would teach the model to stop mid-way."""
    cut = max(text.rfind(c) for c in (". ", ".\n", "!", "?", "\n"))
    if text.endswith((".", "!", "?")) or cut < len(text) // 2:
        return text
    return text[: cut + 1].strip()


def rehearsal_set(model: Any, tokenizer: Any, base_sha256: str, prompts: list[Record],
                  max_new: int, cache: Path, batch: int = 16) -> Rehearsal:  # fmt: skip
    """The prompts with the base model's answers, from the cache or generated now."""
    chats = [[{"role": m.role, "content": m.content} for m in p.messages] for p in prompts]
    key = hashlib.sha256(json.dumps([base_sha256, chats, max_new]).encode()).hexdigest()[:16]
    path = cache / f"{base_sha256[:12]}-{key}.jsonl"
    seconds, tokens = 0.0, 0
    if not path.is_file():
        start = time.perf_counter()
        answers, tokens = _answer(model, tokenizer, chats, max_new, batch)
        seconds = time.perf_counter() - start
        rows = [{"id": p.id, "messages": [*c, {"role": "assistant", "content": a}],
                 "source": SOURCE, "meta": {"rehearsal": True}}
                for p, c, a in zip(prompts, chats, answers, strict=True) if a]  # fmt: skip
        write_jsonl(path, rows)
    records = [record_from_obj(r) for r in map(json.loads, path.read_text().splitlines())]
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return Rehearsal(records, path, sha, seconds, tokens)


def sample(rehearsal: Rehearsal, n: int, seed: int) -> list[Record]:
    """``n`` of the rehearsal records (at most the whole pool), drawn reproducibly."""
    pool = list(rehearsal.records)
    random.Random(f"{seed}:{rehearsal.sha256}").shuffle(pool)
    return pool[:n]
