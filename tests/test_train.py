"""Training on a tiny Llama: completion-only labels, packing, exact resume, torn checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tuneloop.model.base import load_base
from tuneloop.train.adapter import adapter_weights
from tuneloop.train.checkpoint import complete_checkpoints
from tuneloop.train.data import IGNORE, collate, pack, single_rows, tokenize
from tuneloop.train.loop import Trainer, TrainSettings, enable_checkpointing
from tuneloop.train.lora import LoraSettings, with_lora

from support.training import Recorder, records


@pytest.fixture(scope="module")
def tiny(tiny_base: Path) -> Path:
    return tiny_base


SETTINGS = TrainSettings(
    max_steps=12, micro_batch=2, grad_accum=2, lr=5e-3, warmup_steps=2, eval_every=4,
    save_every=4, patience=10, max_len=64, block_size=64, lora=LoraSettings(r=4, alpha=8),
)  # fmt: skip


def make_trainer(
    tiny: Path, out: Path, settings: TrainSettings = SETTINGS, hook: Any = None
) -> Trainer:
    model, tok, _ = load_base(str(tiny))
    torch.manual_seed(settings.seed)
    model = with_lora(model, settings.lora)
    examples = tokenize(records(40), tok, settings.max_len).examples
    rows = (
        pack(examples[:32], settings.block_size) if settings.packing else single_rows(examples[:32])
    )
    val = single_rows(examples[32:])
    return Trainer(model, tok.pad_token_id, rows, val, settings, out, hook)


def test_labels_cover_the_assistant_turn_only(tiny: Path) -> None:
    _, tok, _ = load_base(str(tiny))
    example = tokenize(records(1), tok, 64).examples[0]
    trained = tok.decode(
        [i for i, lab in zip(example.input_ids, example.labels, strict=True) if lab != IGNORE]
    )
    assert trained.startswith('{"intent": "x0"}') and "card" not in trained


def test_packed_loss_equals_separate_losses(tiny: Path) -> None:
    model, tok, _ = load_base(str(tiny))
    examples = tokenize(records(5), tok, 64).examples

    def loss_sum(batch: dict[str, Any]) -> float:
        labels = batch.pop("labels")
        logits = model(**batch, use_cache=False).logits[:, :-1]
        return float(torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
            ignore_index=IGNORE, reduction="sum"))  # fmt: skip

    with torch.no_grad():
        packed = loss_sum(collate(pack(examples, 1000), tok.pad_token_id, packed=True))
        separate = sum(
            loss_sum(collate([r], tok.pad_token_id, packed=False)) for r in single_rows(examples)
        )
    assert packed == pytest.approx(separate, rel=1e-5)


@pytest.mark.parametrize("checkpointed", [False, True])
def test_chunked_loss_and_checkpointing_give_the_full_loss_and_its_gradients(
    tiny: Path, tmp_path: Path, checkpointed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The memory savers change no number: the chunked loss (chunks smaller than a row here) and
    gradient checkpointing give the loss and LoRA gradients of the plain full-logits pass."""
    import tuneloop.train.loop as loop

    monkeypatch.setattr(loop, "LOSS_CHUNK", 7)
    trainer = make_trainer(tiny, tmp_path)
    trainer.model.train()
    rows = trainer.batches[0]
    lora = [p for p in trainer.model.parameters() if p.requires_grad]

    def loss_and_grads(chunked: bool) -> tuple[float, list[torch.Tensor]]:
        monkeypatch.setattr(loop, "chunked_loss_fits", lambda model: chunked)
        torch.manual_seed(0)  # the same LoRA dropout masks in both passes
        loss, count = trainer._loss_sum(rows)
        loss.backward()
        grads = [p.grad.clone() for p in lora]  # type: ignore[union-attr]
        trainer.optimizer.zero_grad(set_to_none=True)
        assert count > 0
        return float(loss), grads

    full, full_grads = loss_and_grads(False)
    if checkpointed:
        enable_checkpointing(trainer.model)
    chunked, chunked_grads = loss_and_grads(True)
    assert loop.chunked_loss_fits.__name__ == "<lambda>"  # the patched rule chose the path
    assert chunked == pytest.approx(full, rel=1e-5)
    for a, b in zip(full_grads, chunked_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def _max_diff(a: Path, b: Path) -> float:
    wa, wb = adapter_weights(a), adapter_weights(b)
    assert wa.keys() == wb.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


@pytest.fixture(scope="module")
def uninterrupted(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Recorder]:
    out = tmp_path_factory.mktemp("straight")
    rec = Recorder()
    make_trainer(tiny, out, hook=rec).run()
    return out, rec


@pytest.mark.parametrize(
    ("kill", "torn"),
    [(7, None), (9, None), (8, (8, "optimizer.json")), (12, (12, "trainer_state.json"))],
    ids=["after-step-7", "after-step-9", "torn-save-at-8", "torn-final-save"],
)
def test_resume_is_exact(
    tiny: Path, tmp_path: Path, uninterrupted: tuple[Path, Recorder], kill: int, torn: Any
) -> None:
    straight, seen = uninterrupted
    first = Recorder(stop_at=None if torn else kill)
    trainer = make_trainer(tiny, tmp_path, hook=first)
    trainer.fail_checkpoint_at = torn
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    resumed_steps = Recorder()
    result = make_trainer(tiny, tmp_path, hook=resumed_steps).run(resume=True)
    start = result.resumed_from or 0
    assert start == (kill - 1) // 4 * 4  # the last complete checkpoint before the kill
    combined = {s: r for s, r in first.steps.items() if s <= start} | resumed_steps.steps
    assert combined == seen.steps  # no sample skipped or repeated
    last = complete_checkpoints(tmp_path / "checkpoints")[-1]
    ref = complete_checkpoints(straight / "checkpoints")[-1]
    from safetensors.torch import load_file

    a, b = load_file(last / "adapter.safetensors"), load_file(ref / "adapter.safetensors")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
    assert _max_diff(tmp_path / "best", straight / "best") <= 1e-6


def test_best_adapter_is_kept_and_early_stopping(tiny: Path, tmp_path: Path) -> None:
    # lr 0 (which [train] refuses) keeps the eval loss flat, so patience runs out
    settings = SETTINGS.model_copy(update={"lr": 0.0, "eval_every": 1, "patience": 2})
    result = make_trainer(tiny, tmp_path, settings).run()
    assert result.stopped_early and result.steps == 3 and result.best_step == 1
    files = {p.name for p in (tmp_path / "best").iterdir()}
    assert "adapter_model.safetensors" in files and not any(
        f.endswith((".bin", ".pt")) for f in files
    )


def test_training_lowers_the_eval_loss(tiny: Path, uninterrupted: tuple[Path, Recorder]) -> None:
    out, _ = uninterrupted
    import json

    evals = [
        json.loads(x)["eval_loss"]
        for x in (out / "metrics.jsonl").read_text().splitlines()
        if "eval_loss" in x
    ]
    assert evals[-1] < evals[0]


@pytest.mark.parametrize(("max_steps", "eval_every", "passes"), [(8, 4, 2), (6, 4, 2), (3, 1, 3)])
def test_final_eval_loss_reuses_the_last_steps_eval(
    tiny: Path, tmp_path: Path, max_steps: int, eval_every: int, passes: int
) -> None:
    """One validation pass per eval: the last step is always evaluated, and its loss is the
    final one (a second pass over the same weights would only cost time)."""
    import json

    settings = SETTINGS.model_copy(update={"max_steps": max_steps, "eval_every": eval_every})
    trainer = make_trainer(tiny, tmp_path, settings)
    calls = []
    real = trainer.eval_loss
    trainer.eval_loss = lambda: calls.append(1) or real()  # type: ignore[method-assign]
    result = trainer.run()
    logged = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    last = [x for x in logged if "eval_loss" in x][-1]
    assert len(calls) == passes
    assert (last["step"], last["eval_loss"]) == (max_steps, result.final_eval_loss)
    assert result.final_eval_loss == pytest.approx(real())  # it is the adapter's loss now
