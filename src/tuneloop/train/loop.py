"""The training loop: LoRA, completion-only loss, accumulation, eval loss, early stopping,
atomic checkpoints and exact resume.

Exact resume rests on three things being a pure function of (seed, step): the data order
(each epoch's permutation comes from ``seed + epoch``), the micro-batches (rows are fixed once
tokenized), and the random state (saved and restored). Resuming from a checkpoint therefore
continues the very same sequence an uninterrupted run would have taken.
"""

from __future__ import annotations

import json
import math
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from tuneloop import faults
from tuneloop.config import Hyperparameters, PrivacySettings
from tuneloop.train.adapter import save_adapter
from tuneloop.train.checkpoint import (
    TrainerState,
    complete_checkpoints,
    load_checkpoint,
    prune,
    remove_torn,
    save_checkpoint,
)
from tuneloop.train.data import IGNORE, Row, collate
from tuneloop.train.lora import LoraSettings
from tuneloop.workspace import RUN_ADAPTER, RUN_CHECKPOINTS, RUN_METRICS

LOSS_CHUNK = 128  # positions per chunk of the chunked loss
# Causal LMs whose logits are the output layer applied to the decoder's last hidden state and
# nothing else (no soft-capping or scaling after it): the chunked loss computes the same sum.
PLAIN_HEAD = frozenset({"llama", "mistral", "qwen2", "qwen3", "phi3", "granite", "olmo2"})


def enable_checkpointing(model: Any) -> None:
    """Recompute each decoder layer's activations in the backward pass instead of keeping them:
    activation memory falls from every layer's to about one layer's, for one more forward
    pass of compute per step (docs/training.md, "Memory"). Non-reentrant, so LoRA's frozen inputs
    need no ``requires_grad`` trick and the results are those of the plain pass."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def chunked_loss_fits(model: Any) -> bool:
    """Whether the loss may be computed chunk by chunk from the decoder's hidden states."""
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) in PLAIN_HEAD and hasattr(model, "get_base_model")


class TrainSettings(Hyperparameters):
    """What one run trains with; every field goes into the model's lineage. The optimisation
    settings are ``[train]``'s own (:class:`tuneloop.config.Hyperparameters`); the rest are
    resolved for the run (autocast decided for this hardware, the KL weight from rehearsal)."""

    max_grad_norm: float = Field(1.0, gt=0.0)
    keep_checkpoints: int = Field(2, ge=1)
    autocast: Literal["off", "bfloat16"] = "off"  # bf16 autocast for forward passes
    distill_weight: float = Field(0.0, ge=0.0)  # weight of the KL to the base model (rehearsal)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    privacy: PrivacySettings | None = None  # DP-SGD (train/private.py); None: not private

    def to_dict(self) -> dict[str, Any]:
        out = self.model_dump()
        if self.privacy is None:  # a non-private run's lineage and run id stay as they were
            del out["privacy"]
        return out


@dataclass
class TrainResult:
    steps: int
    stopped_early: bool
    best_step: int | None
    best_eval_loss: float | None
    final_eval_loss: float | None
    tokens: int
    seconds: float
    adapter_dir: Path
    resumed_from: int | None = None


Hook = Callable[[str, dict[str, Any]], None]


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (1 outside torchrun / accelerate)."""
    import torch.distributed as dist  # noqa: PLC0415 - heavy (torch)

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed() -> None:
    """Join the process group when launched by torchrun / accelerate (gloo on CPU, nccl on GPU)."""
    import torch  # noqa: PLC0415 - heavy (torch)
    import torch.distributed as dist  # noqa: PLC0415 - heavy (torch)

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def native_bf16() -> bool:
    """Whether bf16 matrix products run natively here: a CUDA GPU that supports them, or a CPU
    with AVX-512 BF16 or AMX (elsewhere PyTorch emulates them, measured 24x slower than fp32
    on an AVX2-only CPU)."""
    import torch  # noqa: PLC0415 - heavy (torch)

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_autocast(setting: Literal["off", "bfloat16", "auto"]) -> Literal["off", "bfloat16"]:
    """``auto`` becomes ``bfloat16`` where it is native, else ``off``."""
    if setting != "auto":
        return setting
    return "bfloat16" if native_bf16() else "off"


def lr_lambda(settings: TrainSettings) -> Callable[[int], float]:
    """Linear warmup, then cosine decay to zero at ``max_steps``."""

    def factor(step: int) -> float:
        if step < settings.warmup_steps:
            return (step + 1) / max(1, settings.warmup_steps)
        span = max(1, settings.max_steps - settings.warmup_steps)
        progress = min(1.0, (step - settings.warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


@lru_cache(maxsize=4)
def epoch_order(n_batches: int, seed: int, epoch: int) -> np.ndarray[Any, Any]:
    """The epoch's micro-batch order (cached: it is asked for at every micro-batch)."""
    return np.random.default_rng(seed + epoch).permutation(n_batches)


def micro_batches(rows: Sequence[Row], size: int) -> list[list[Row]]:
    return [list(rows[i : i + size]) for i in range(0, len(rows), size)]


class Trainer:
    """Runs one training job into ``out_dir``, a run folder laid out as :mod:`tuneloop.workspace`
    names it (the best adapter, the checkpoints, the metrics log)."""

    def __init__(
        self,
        model: Any,
        pad_id: int,
        train_rows: Sequence[Row],
        val_rows: Sequence[Row],
        settings: TrainSettings,
        out_dir: Path,
        hook: Hook | None = None,
        distill_rows: Sequence[Row] = (),
    ) -> None:
        import torch  # noqa: PLC0415 - heavy (torch)

        self.model = model
        self.distill_batches = micro_batches(distill_rows, settings.micro_batch)
        self.pad_id = pad_id
        self.settings = settings
        self.out_dir = out_dir
        self.hook = hook or (lambda event, data: None)
        self.batches = micro_batches(train_rows, settings.micro_batch)
        self.val_batches = micro_batches(val_rows, settings.micro_batch)
        if not self.batches:
            raise ValueError("no training rows")
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            params, lr=settings.lr, weight_decay=settings.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(settings))
        self.state = TrainerState()
        self._evaluated: tuple[int, float | None] = (-1, None)  # the last eval: step, loss
        self.checkpoints = out_dir / RUN_CHECKPOINTS
        self.rank, self.world = rank_and_world()
        self.is_main = self.rank == 0

    # -- batches -------------------------------------------------------------------------
    def _next_group(self) -> list[list[Row]]:
        """The micro-batches of the next optimizer step (all ranks'), advancing the position."""
        group = []
        for _ in range(self.settings.grad_accum * self.world):
            order = epoch_order(len(self.batches), self.settings.seed, self.state.epoch)
            group.append(self.batches[int(order[self.state.cursor])])
            self.state.cursor += 1
            if self.state.cursor == len(self.batches):
                self.state.epoch += 1
                self.state.cursor = 0
        return group

    def _forward(self, batch: dict[str, Any]) -> Any:
        """Logits of a collated batch (in bf16 autocast when the settings ask for it)."""
        import torch  # noqa: PLC0415 - heavy (torch)

        device = "cuda" if next(self.model.parameters()).is_cuda else "cpu"
        enabled = self.settings.autocast == "bfloat16"
        with torch.autocast(device, dtype=torch.bfloat16, enabled=enabled):
            return self.model(**batch, use_cache=False).logits

    def _kl_sum(self, rows: list[Row]) -> tuple[Any, int]:
        """Sum over the labelled tokens of KL(base ‖ adapted) next-token distributions.

        The base model is this model with its adapter disabled, so no second copy is held.
        Forward KL (mass-covering) keeps the whole distribution, not only its mode: training
        on the base model's sampled answers instead sharpens it, and the loss of any other
        answer rises (measured: rehearsal as plain SFT raised the forgetting suite's answer
        loss more than no rehearsal at all).
        """
        import torch  # noqa: PLC0415 - heavy (torch)

        batch = collate(rows, self.pad_id, self.settings.packing)
        labels = batch.pop("labels")
        mask = labels[:, 1:] != IGNORE
        with torch.no_grad(), self.model.disable_adapter():
            teacher = torch.log_softmax(self._forward(batch)[:, :-1, :].float(), dim=-1)[mask]
        student = torch.log_softmax(self._forward(batch)[:, :-1, :].float(), dim=-1)[mask]
        kl = torch.sum(teacher.exp() * (teacher - student))
        return kl, int(mask.sum())

    def _distill_step(self) -> float | None:
        """Backpropagate the step's KL term (one rehearsal micro-batch per rank per step)."""
        if not self.distill_batches or self.settings.distill_weight == 0:
            return None
        k = (self.state.step * self.world + self.rank) % len(self.distill_batches)
        kl, count = self._kl_sum(self.distill_batches[k])
        mean = kl / max(1, count)
        (self.settings.distill_weight * mean / self.world).backward()
        return float(mean.detach())

    def _loss_sum(self, rows: list[Row]) -> tuple[Any, int]:
        """Sum of token losses over the labelled tokens of a micro-batch, and their count."""
        import torch  # noqa: PLC0415 - heavy (torch)

        batch = collate(rows, self.pad_id, self.settings.packing)
        labels = batch.pop("labels")
        target = labels[:, 1:]
        count = int((target != IGNORE).sum())
        if chunked_loss_fits(self.model):
            return self._chunked_loss_sum(batch, target), count
        logits = self._forward(batch)
        logits = logits[:, :-1, :].float()
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
            ignore_index=IGNORE, reduction="sum",
        )  # fmt: skip
        return loss, count

    def _chunked_loss_sum(self, batch: dict[str, Any], target: Any) -> Any:
        """The same sum without the whole batch's logits: the output layer and the loss run
        over LOSS_CHUNK positions at a time and are recomputed in the backward pass, so only
        one chunk's logits (vocabulary x chunk floats) live at once instead of the batch's
        (49,152 x 2,048 floats = 400 MB, three times over with the softmax and its gradient).
        """
        import torch  # noqa: PLC0415 - heavy (torch)
        from torch.utils.checkpoint import checkpoint  # noqa: PLC0415 - heavy (torch)

        base = self.model.get_base_model()
        head = base.get_output_embeddings()
        device = "cuda" if next(self.model.parameters()).is_cuda else "cpu"
        enabled = self.settings.autocast == "bfloat16"

        def part(hidden: Any, wanted: Any) -> Any:
            with torch.autocast(device, dtype=torch.bfloat16, enabled=enabled):
                logits = head(hidden)
            return torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), wanted.reshape(-1),
                ignore_index=IGNORE, reduction="sum",
            )  # fmt: skip

        with torch.autocast(device, dtype=torch.bfloat16, enabled=enabled):
            hidden = base.get_decoder()(**batch, use_cache=False).last_hidden_state[:, :-1]
        total = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, hidden.shape[1], LOSS_CHUNK):
            end = start + LOSS_CHUNK
            total = total + checkpoint(part, hidden[:, start:end], target[:, start:end],
                                       use_reentrant=False)  # fmt: skip
        return total

    # -- steps ---------------------------------------------------------------------------
    def _train_step(self) -> dict[str, Any]:
        import torch  # noqa: PLC0415 - heavy (torch)

        self.model.train()
        group = self._next_group()
        counts = [int(sum(1 for r in rows for x in r.labels[1:] if x != IGNORE)) for rows in group]
        total = max(1, sum(counts))  # over every rank's micro-batches: the step's true mean
        loss_total = 0.0
        for rows in group[self.rank :: self.world]:
            loss, _ = self._loss_sum(rows)
            (loss / total).backward()
            loss_total += float(loss.detach())
        kl = self._distill_step()
        loss_total = self._sum_across_ranks(loss_total)
        torch.nn.utils.clip_grad_norm_(
            [p for p in self.model.parameters() if p.requires_grad], self.settings.max_grad_norm
        )
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        tokens = sum(len(r) for rows in group for r in rows)
        self.state.tokens += tokens
        ids = [rid for rows in group for r in rows for rid in r.record_ids]
        return {"step": self.state.step, "loss": loss_total / total, "tokens": tokens,
                "lr": self.scheduler.get_last_lr()[0], "records": ids,
                **({"kl_to_base": kl} if kl is not None else {})}  # fmt: skip

    def _sum_across_ranks(self, loss_total: float) -> float:
        """Sum every trainable gradient (and the loss) over ranks: the same step as one process.

        Each rank's loss is already divided by the whole step's token count, so a plain sum of
        gradients gives exactly the single-process gradient of the same global batch.
        """
        if self.world == 1:
            return loss_total
        import torch  # noqa: PLC0415 - heavy (torch)
        import torch.distributed as dist  # noqa: PLC0415 - heavy (torch)

        for p in self.model.parameters():
            if p.requires_grad:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        value = torch.tensor([loss_total], dtype=torch.float64)
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return float(value[0])

    def eval_loss(self) -> float | None:
        """Mean token loss on the validation rows (no dropout, no gradients)."""
        import torch  # noqa: PLC0415 - heavy (torch)

        if not self.val_batches:
            return None
        self.model.eval()
        loss_sum, count = 0.0, 0
        with torch.no_grad():
            for rows in self.val_batches:
                loss, n = self._loss_sum(rows)
                loss_sum += float(loss)
                count += n
        return loss_sum / max(1, count)

    # -- adapter and checkpoints -----------------------------------------------------------
    def adapter_state(self) -> dict[str, Any]:
        from peft import get_peft_model_state_dict  # noqa: PLC0415 - heavy (peft)

        return {
            k: v.detach().clone().contiguous()
            for k, v in get_peft_model_state_dict(self.model).items()
        }

    def _load_adapter(self, weights: dict[str, Any]) -> None:
        from peft import set_peft_model_state_dict  # noqa: PLC0415 - heavy (peft)

        set_peft_model_state_dict(self.model, weights)

    def _save_best(self) -> None:
        if self.is_main:
            save_adapter(self.model, self.out_dir / RUN_ADAPTER)
        self._barrier()

    def _barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist  # noqa: PLC0415 - heavy (torch)

            dist.barrier()

    def resume(self) -> int | None:
        """Continue from the newest complete checkpoint, if any; return its step."""
        remove_torn(self.checkpoints)
        found = complete_checkpoints(self.checkpoints)
        if not found:
            return None
        weights, self.state = load_checkpoint(found[-1], self.optimizer, self.scheduler)
        self._load_adapter(weights)
        return self.state.step

    def _checkpoint(self, fail_after: str | None = None) -> None:
        if not self.is_main:
            self._barrier()
            return
        save_checkpoint(
            self.checkpoints, self.adapter_state(), self.optimizer, self.scheduler, self.state,
            fail_after,
        )  # fmt: skip
        prune(self.checkpoints, self.settings.keep_checkpoints)
        self._barrier()

    def _evaluate(self, log: Any) -> bool:
        """Eval loss, best-adapter bookkeeping; True when early stopping says stop."""
        loss = self.eval_loss()
        self._evaluated = (self.state.step, loss)
        if loss is None:
            return False
        s = self.state
        improved = s.best_eval_loss is None or loss < s.best_eval_loss - 1e-6
        if improved:
            s.best_eval_loss, s.best_step, s.bad_evals = loss, s.step, 0
            self._save_best()
        else:
            s.bad_evals += 1
        log.write(json.dumps({"step": s.step, "eval_loss": loss, "best": improved}) + "\n")
        self.hook("eval", {"step": s.step, "eval_loss": loss})
        return s.bad_evals >= self.settings.patience

    def run(
        self, resume: bool = False, progress: Callable[[dict[str, Any]], None] | None = None
    ) -> TrainResult:
        start = time.perf_counter()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        resumed = self.resume() if resume else None
        # a run that had stopped early stays stopped: resuming it must not train on
        stopped = resumed is not None and self.state.bad_evals >= self.settings.patience
        log_path = self.out_dir / RUN_METRICS if self.is_main else Path(os.devnull)
        with log_path.open("a", encoding="utf-8") as log:
            while self.state.step < self.settings.max_steps and not stopped:
                info = self._train_step()
                self.hook("step", info)
                log.write(json.dumps({k: v for k, v in info.items() if k != "records"}) + "\n")
                log.flush()
                if progress is not None:
                    progress(info)
                step = self.state.step
                if step % self.settings.eval_every == 0 or step == self.settings.max_steps:
                    stopped = self._evaluate(log)
                if (
                    step % self.settings.save_every == 0
                    or stopped
                    or step == self.settings.max_steps
                ):
                    self._checkpoint(self.hook_fail_after(step))
                    faults.point("train:after_checkpoint")
        # the last step was just evaluated (eval_every or max_steps): no second pass over it
        at, loss = self._evaluated
        final = loss if at == self.state.step else self.eval_loss()
        if self.state.best_step is None:
            self._save_best()
        return TrainResult(
            steps=self.state.step, stopped_early=stopped, best_step=self.state.best_step,
            best_eval_loss=self.state.best_eval_loss, final_eval_loss=final,
            tokens=self.state.tokens, seconds=time.perf_counter() - start,
            adapter_dir=self.out_dir / RUN_ADAPTER, resumed_from=resumed,
        )  # fmt: skip

    def estimate(self) -> dict[str, Any]:
        """What the whole run would take, from one measured optimizer step and one measured
        validation micro-batch (warm: after a first step that pays for start-up costs). Trains
        those steps on this model but writes nothing: no run folder, checkpoint or adapter."""
        import torch  # noqa: PLC0415 - heavy (torch)

        self._train_step()  # warm-up: first-touch allocations, kernels chosen
        start = time.perf_counter()
        self._train_step()
        step_s = time.perf_counter() - start
        val_s = 0.0
        if self.val_batches:
            self.model.eval()
            start = time.perf_counter()
            with torch.no_grad():
                self._loss_sum(self.val_batches[0])
            val_s = (time.perf_counter() - start) * len(self.val_batches)
        s = self.settings
        evals = len({*range(s.eval_every, s.max_steps + 1, s.eval_every), s.max_steps})
        step_s, val_s = round(step_s, 3), round(val_s, 3)  # the total is made of what is shown
        return {
            "steps": s.max_steps, "rows_per_step": s.micro_batch * s.grad_accum,
            "tokens_per_row": s.block_size if s.packing else s.max_len,
            "seconds_per_step": step_s, "evaluations": evals,
            "seconds_per_evaluation": val_s,
            "estimated_seconds": round(s.max_steps * step_s + evals * val_s, 1),
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }  # fmt: skip

    fail_checkpoint_at: tuple[int, str] | None = None  # tests: (step, file) to die while saving

    def hook_fail_after(self, step: int) -> str | None:
        if self.fail_checkpoint_at and self.fail_checkpoint_at[0] == step:
            return self.fail_checkpoint_at[1]
        return None
