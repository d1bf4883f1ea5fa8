"""Training throughput: ``tuneloop train``'s loop (packing) vs a plain HF Trainer + peft loop
with padding, on the same model (SmolLM2-135M-Instruct), data, LoRA and optimizer settings.

Both train on the same 256 Alpaca records (prompt tokens masked, max 256 tokens) for the same
number of real (non-padding) tokens; we report real tokens per second and the final eval loss
on the same held-out records, computed by the same function.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tuneloop.model.base import load_base
from tuneloop.model.fetch import fetch_default
from tuneloop.records import Message, Record
from tuneloop.train.data import IGNORE, Example, pack, single_rows, tokenize
from tuneloop.train.loop import Trainer, TrainSettings
from tuneloop.train.lora import LoraSettings, with_lora

from bench import data

MAX_LEN = 256
LORA = LoraSettings(r=16, alpha=32, dropout=0.0)


def alpaca_records(n: int) -> list[Record]:
    path = data.root() / data.ALPACA
    rows = json.loads(path.read_text(encoding="utf-8"))[:n]
    return [
        Record(
            id=f"a{i}",
            shape="chat",
            messages=(
                Message("user", f"{r['instruction']}\n{r['input']}".strip()),
                Message("assistant", r["output"]),
            ),
        )
        for i, r in enumerate(rows)
    ]


def _eval_loss(model: Any, examples: list[Example], pad_id: int) -> float:
    import torch

    trainer = Trainer.__new__(Trainer)
    trainer.model, trainer.pad_id = model, pad_id
    trainer.settings = TrainSettings(packing=False)
    trainer.val_batches = [single_rows(examples[i : i + 8]) for i in range(0, len(examples), 8)]
    with torch.no_grad():
        return float(trainer.eval_loss() or 0.0)


def run_tuneloop(examples: list[Example], val: list[Example], steps: int) -> dict[str, Any]:
    import torch

    model, tok, _ = load_base(str(fetch_default()))
    torch.manual_seed(0)
    model = with_lora(model, LORA)
    settings = TrainSettings(max_steps=steps, micro_batch=3, grad_accum=1, lr=2e-4,
                             warmup_steps=2, eval_every=10**6, save_every=10**6, packing=True,
                             max_len=MAX_LEN, block_size=512, lora=LORA)  # fmt: skip
    rows = pack(examples, 512)
    out = Path("bench/out/train-tuneloop")
    trainer = Trainer(model, tok.pad_token_id, rows, [], settings, out)
    start = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - start
    return {"tool": "tuneloop (packed rows of 512)", "seconds": seconds,
            "real_tokens": trainer.state.tokens, "tokens_per_s": trainer.state.tokens / seconds,
            "eval_loss": _eval_loss(trainer.model, val, tok.pad_token_id)}  # fmt: skip


def run_hf_trainer(examples: list[Example], val: list[Example], steps: int) -> dict[str, Any]:
    import torch
    from transformers import Trainer as HFTrainer
    from transformers import TrainingArguments

    model, tok, _ = load_base(str(fetch_default()))
    torch.manual_seed(0)
    model = with_lora(model, LORA)
    data = [{"input_ids": list(e.input_ids), "labels": list(e.labels)} for e in examples]

    def collate(batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), tok.pad_token_id)
        labels = torch.full((len(batch), width), IGNORE)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for k, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[k, :n], labels[k, :n], mask[k, :n] = (torch.tensor(b["input_ids"]),
                                                      torch.tensor(b["labels"]), 1)  # fmt: skip
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    args = TrainingArguments(output_dir="bench/out/train-hf", per_device_train_batch_size=8,
                             max_steps=steps, learning_rate=2e-4, warmup_steps=2,
                             logging_steps=10**6, save_strategy="no", report_to=[],
                             seed=0, use_cpu=True, disable_tqdm=True)  # fmt: skip
    trainer = HFTrainer(model=model, args=args, train_dataset=data, data_collator=collate)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    mean_len = sum(len(e.input_ids) for e in examples) / len(examples)
    real = round(mean_len * 8 * steps)  # the sampler shuffles: count by the mean length
    return {"tool": "HF Trainer + peft (padding, batch 8)", "seconds": seconds,
            "real_tokens": real, "tokens_per_s": real / seconds,
            "eval_loss": _eval_loss(model, val, tok.pad_token_id)}  # fmt: skip


def run(steps_hf: int = 24) -> list[dict[str, Any]]:
    _, tok, _ = load_base(str(fetch_default()))
    tokenized = tokenize(alpaca_records(288), tok, MAX_LEN).examples
    train, val = tokenized[:256], tokenized[256:]
    hf = run_hf_trainer(train, val, steps_hf)
    # the same number of real tokens for tuneloop: packed rows hold ~3 examples of ~150 tokens
    rows = pack(train, 512)
    per_row = sum(len(r) for r in rows) / len(rows)
    steps = max(1, round(hf["real_tokens"] / (3 * per_row)))
    ours = run_tuneloop(train, val, steps)
    return [ours, hf]
