"""DP-SGD in the training loop: Poisson-sampled users, per-user clipping, Gaussian noise.

Opacus computes the per-example gradients of the LoRA weights (``GradSampleHooks``: hooks on
the adapter's linear layers, the base model stays frozen) and clips and noises them
(``DPOptimizer`` around the same AdamW). Between the two, the per-example gradients of one step
are summed per privacy unit (see ``train/privacy.py``), so that what is clipped is a user's
whole contribution. Everything else is the base trainer's: eval loss, early stopping, atomic
checkpoints, and exact resume (the sample of a step is a function of (seed, step); noise and
dropout come from the RNG state the checkpoint keeps).

Differences from the non-private loop, by design: no packing (one example per row, or the
clipping would bound a packed row, not an example); ``micro_batch x grad_accum`` is the
expected number of users per step (their rows go through in micro-batches of ``micro_batch``);
each example's loss is its mean token loss and a user's is the mean over their sampled examples;
no global gradient clipping (per-user clipping replaces it); one process only.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tuneloop.errors import TrainingGuardError, TuneloopError, needs_extra
from tuneloop.train.data import IGNORE, Row, collate
from tuneloop.train.loop import Hook, Trainer, TrainResult, TrainSettings
from tuneloop.train.privacy import (
    PoissonSampler,
    PrivacyPlan,
    WeightsSnapshot,
    check_first_step,
    group_rows,
    make_plan,
    snapshot,
)

# Opacus's backward hooks sit on the adapter's layers, whose inputs need no gradient.
_HOOK_WARNING = "Full backward hook is firing when gradients are computed"


def check_private_settings(settings: TrainSettings, world: int) -> None:
    """One line for each combination a private run does not support."""
    if settings.privacy is None:
        raise ValueError("PrivateTrainer needs settings.privacy")
    if settings.packing:
        raise TuneloopError(
            "private training needs packing off (clipping would bound a packed row, not one "
            "example); set packing = false"
        )
    if settings.distill_weight:
        raise TuneloopError(
            "private training does not support rehearsal = 'kl'; use 'sft' or 'off'"
        )
    if world > 1:
        raise TuneloopError(
            "private training runs in one process (per-user clipping is not distributed); "
            "launch it without torchrun / accelerate"
        )


class PrivateTrainer(Trainer):
    """The base trainer with DP-SGD steps; ``row_units[i]`` is the privacy unit of row ``i``."""

    def __init__(
        self,
        model: Any,
        pad_id: int,
        train_rows: Sequence[Row],
        val_rows: Sequence[Row],
        settings: TrainSettings,
        out_dir: Path,
        row_units: Sequence[str],
        hook: Hook | None = None,
    ) -> None:
        with needs_extra("privacy", "private training ([train.privacy])"):
            from opacus.grad_sample import GradSampleHooks  # noqa: PLC0415 - opacus: [privacy] extra
            from opacus.optimizers import DPOptimizer  # noqa: PLC0415 - opacus: [privacy] extra

        super().__init__(model, pad_id, train_rows, val_rows, settings, out_dir, hook)
        check_private_settings(settings, self.world)
        privacy = settings.privacy
        if privacy is None or len(row_units) != len(train_rows):
            raise ValueError("one privacy unit per training row")
        self.rows = list(train_rows)
        keys, rows_by_unit = group_rows(row_units)
        self.unit_keys = keys
        expected = settings.micro_batch * settings.grad_accum
        self.plan: PrivacyPlan = make_plan(privacy, keys, expected, settings.max_steps)
        self.sampler = PoissonSampler(
            rows_by_unit, self.plan.sample_rate, privacy.max_examples_per_user, settings.seed
        )
        self.hooks = GradSampleHooks(model, batch_first=True, loss_reduction="sum", strict=True)
        self.optimizer: Any = DPOptimizer(
            self.optimizer, noise_multiplier=self.plan.noise_multiplier,
            max_grad_norm=privacy.max_grad_norm,
            expected_batch_size=self.plan.sample_rate * self.plan.units, loss_reduction="mean",
        )  # fmt: skip
        self.guarded = False  # the first step this trainer takes is checked

    def _example_losses(self, rows: list[Row]) -> Any:
        """Each row's mean loss over its labelled tokens."""
        import torch  # noqa: PLC0415 - heavy (torch)

        batch = collate(rows, self.pad_id, packed=False)
        labels = batch.pop("labels")
        logits = self._forward(batch)[:, :-1, :].float()
        target = labels[:, 1:]
        per_token = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
            ignore_index=IGNORE, reduction="none",
        ).view(target.shape)  # fmt: skip
        return per_token.sum(dim=1) / (target != IGNORE).sum(dim=1).clamp(min=1)

    def _per_unit_gradients(self, drawn_rows: list[list[int]]) -> tuple[float, int]:
        """Backward over the sampled rows; leave each parameter's per-unit gradient sum in
        ``grad_sample`` (one row per sampled unit) for the DP optimizer to clip and noise."""
        import torch  # noqa: PLC0415 - heavy (torch)

        params = self.optimizer.params
        sums = [torch.zeros((len(drawn_rows), *p.shape), dtype=p.dtype, device=p.device)
                for p in params]  # fmt: skip
        flat = [(k, r) for k, rows in enumerate(drawn_rows) for r in rows]
        loss_total = 0.0
        for start in range(0, len(flat), self.settings.micro_batch):
            chunk = flat[start : start + self.settings.micro_batch]
            losses = self._example_losses([self.rows[r] for _, r in chunk])
            weights = torch.tensor([1.0 / len(drawn_rows[k]) for k, _ in chunk])
            (losses * weights.to(losses.device)).sum().backward()
            owner = torch.tensor([k for k, _ in chunk], device=sums[0].device)
            for p, acc in zip(params, sums, strict=True):
                if p.grad_sample is None:
                    raise TrainingGuardError(
                        "private training: Opacus computed no per-example gradient for a LoRA "
                        "weight; the adapter would not be trained privately (opacus#820)"
                    )
                acc.index_add_(0, owner, p.grad_sample.to(acc.dtype))
                p.grad_sample = None
            loss_total += float(losses.detach().sum())
        for p, acc in zip(params, sums, strict=True):
            p.grad_sample = acc
        return loss_total, len(flat)

    def _train_step(self) -> dict[str, Any]:
        before: WeightsSnapshot | None = None if self.guarded else snapshot(self.model)
        self.model.train()
        drawn = self.sampler.sample(self.state.step)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_HOOK_WARNING)
            loss_total, examples = self._per_unit_gradients(drawn.rows)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        if before is not None:
            check_first_step(before, self.model, self.state.step)
            self.guarded = True
        rows = [self.rows[r] for unit_rows in drawn.rows for r in unit_rows]
        tokens = sum(len(r) for r in rows)
        self.state.tokens += tokens
        return {"step": self.state.step, "loss": loss_total / max(1, examples),
                "tokens": tokens, "lr": self.scheduler.get_last_lr()[0],
                "units": len(drawn.units), "epsilon": self.plan.epsilon_at(self.state.step),
                "records": [rid for r in rows for rid in r.record_ids]}  # fmt: skip

    def run(
        self, resume: bool = False, progress: Callable[[dict[str, Any]], None] | None = None
    ) -> TrainResult:
        try:
            return super().run(resume=resume, progress=progress)
        finally:
            self._unhook()

    def _unhook(self) -> None:
        """Take Opacus's hooks and per-parameter attributes off the model."""
        self.hooks.remove_hooks()
        for p in self.model.parameters():
            for attr in ("grad_sample", "summed_grad", "_forward_counter"):
                if hasattr(p, attr):
                    delattr(p, attr)

    def privacy_lineage(self) -> dict[str, Any]:
        """What the run spent, for the lineage: ε at the steps actually taken, and the plan."""
        return self.plan.lineage(self.state.step)
