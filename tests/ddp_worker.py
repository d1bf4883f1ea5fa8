"""Run by torchrun in tests/test_ddp.py: the same tiny training job on every rank."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from tuneloop.model.base import load_base
from tuneloop.train.data import pack, single_rows, tokenize
from tuneloop.train.loop import Trainer, TrainSettings, init_distributed
from tuneloop.train.lora import LoraSettings, with_lora

from support.training import records


def main(base: str, out: str, grad_accum: int) -> None:
    init_distributed()
    settings = TrainSettings(
        max_steps=6, micro_batch=2, grad_accum=grad_accum, lr=5e-3, warmup_steps=1,
        eval_every=3, save_every=3, max_len=64, block_size=64,
        lora=LoraSettings(r=4, alpha=8, dropout=0.0),
    )  # fmt: skip
    model, tok, _ = load_base(base)
    torch.manual_seed(0)
    model = with_lora(model, settings.lora)
    examples = tokenize(records(40), tok, 64).examples
    trainer = Trainer(
        model, tok.pad_token_id, pack(examples[:32], 64), single_rows(examples[32:]),
        settings, Path(out),
    )  # fmt: skip
    trainer.run()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
