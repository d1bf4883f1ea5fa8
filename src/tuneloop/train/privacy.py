"""Differential privacy for LoRA training: the unit, the plan, Poisson sampling, the accountant,
and the guard against an adapter that silently does not train.

**The unit is the user.** Records are grouped by ``user_id`` (else ``conversation_id``, else
the record itself: then a person with several unlinked conversations is protected per
conversation only). Each step samples every unit independently with probability ``q``
(Poisson sampling), takes up to ``max_examples_per_user`` of a sampled unit's examples, and
the gradient of that unit's mean example loss is clipped to ``max_grad_norm`` as a whole. Adding
or removing one user's data therefore changes one clipped term of one Poisson-sampled sum: the
subsampled Gaussian mechanism that Opacus's accountants (RDP or PRV) bound. The guarantee is
user-level (ε, δ) for the adapter's weights; it says nothing about the logs of the run, the
validation split used for early stopping, or a base model that already saw the data.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from tuneloop.config import (
    PrivacySettings as PrivacySettings,  # the run's, declared with [train.privacy]
)
from tuneloop.errors import ConfigError, TrainingGuardError, TuneloopError, needs_extra
from tuneloop.records import Record

Accountant = Literal["rdp", "prv"]
# RDP at few steps and a large ε: the best order is the largest tried, so the bound is valid
# but could be tighter (PRV is then the better accountant).
_LOOSE_RDP = "Optimal order is the largest alpha"


def unit_of(record: Record) -> str:
    """The privacy unit a record belongs to: its user, else its conversation, else itself."""
    if record.user_id:
        return f"user:{record.user_id}"
    if record.conversation_id:
        return f"conversation:{record.conversation_id}"
    return f"record:{record.id}"


def unit_kind(units: Iterable[str]) -> str:
    """``user``, ``conversation`` or ``record``, or ``mixed`` (for the lineage)."""
    kinds = {u.split(":", 1)[0] for u in units}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def epsilon_spent(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: Accountant
) -> float:
    """The accountant's ε after ``steps`` steps of the subsampled Gaussian mechanism."""
    with needs_extra("privacy", "private training ([train.privacy])"):
        from opacus.accountants import create_accountant  # noqa: PLC0415 - opacus: [privacy] extra

    if steps == 0:
        return 0.0
    acc = create_accountant(mechanism=accountant)
    acc.history = [(noise_multiplier, sample_rate, steps)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_LOOSE_RDP)
        return float(acc.get_epsilon(delta=delta))


@dataclass(frozen=True)
class PrivacyPlan:
    """The noise and sampling of a run, fixed before its first step."""

    settings: PrivacySettings
    units: int  # distinct units in the training rows
    expected_batch: int  # units per step on average (micro_batch x grad_accum)
    sample_rate: float
    steps: int  # planned: the noise is calibrated for this many
    noise_multiplier: float
    unit_kind: str

    def epsilon_at(self, steps: int) -> float:
        s = self.settings
        return epsilon_spent(self.noise_multiplier, self.sample_rate, steps, s.delta, s.accountant)

    def lineage(self, steps_done: int) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon_at(steps_done),
            "target_epsilon": self.settings.epsilon,
            "delta": self.settings.delta,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "expected_batch": self.expected_batch,
            "steps": steps_done,
            "planned_steps": self.steps,
            "max_grad_norm": self.settings.max_grad_norm,
            "accountant": self.settings.accountant,
            "unit": self.unit_kind,
            "units": self.units,
            "max_examples_per_user": self.settings.max_examples_per_user,
            "sampling": "poisson",
            "packing": False,
        }


def make_plan(
    settings: PrivacySettings, unit_keys: Sequence[str], expected_batch: int, steps: int
) -> PrivacyPlan:
    """Sample rate from the expected batch, and the smallest noise reaching ε at ``steps``."""
    with needs_extra("privacy", "private training ([train.privacy])"):
        from opacus.accountants.utils import get_noise_multiplier  # noqa: PLC0415 - opacus: [privacy] extra

    units = len(set(unit_keys))
    if units == 0:
        raise TuneloopError("private training: no training examples; ingest data and curate")
    if settings.delta >= 1.0 / units:
        raise ConfigError(
            f"train.privacy.delta = {settings.delta:g} is not below 1 / {units} users "
            f"({1.0 / units:.2g}): a δ that large allows leaking one user outright; lower it"
        )
    rate = min(1.0, expected_batch / units)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_LOOSE_RDP)
            sigma = get_noise_multiplier(
                target_epsilon=settings.epsilon, target_delta=settings.delta, sample_rate=rate,
                steps=steps, accountant=settings.accountant,
            )  # fmt: skip
    except ValueError as exc:
        raise ConfigError(
            f"train.privacy.epsilon = {settings.epsilon:g} cannot be reached with {units} users "
            f"in {steps} steps ({exc}); raise epsilon, add users, or train fewer steps"
        ) from None
    kind = unit_kind(unit_keys)
    return PrivacyPlan(settings, units, expected_batch, rate, steps, float(sigma), kind)


@dataclass(frozen=True)
class StepSample:
    """One step's Poisson sample: for each sampled unit, the rows it contributes."""

    units: list[int]
    rows: list[list[int]]


class PoissonSampler:
    """Each unit in independently with probability ``rate``; a pure function of (seed, step),
    so a resumed run draws the same samples as an uninterrupted one."""

    def __init__(self, rows_by_unit: Sequence[Sequence[int]], rate: float, cap: int, seed: int):
        self.rows_by_unit = [list(r) for r in rows_by_unit]
        self.rate = rate
        self.cap = cap
        self.seed = seed

    def sample(self, step: int) -> StepSample:
        rng = np.random.default_rng([self.seed, step, 0xD9])
        chosen = np.flatnonzero(rng.random(len(self.rows_by_unit)) < self.rate)
        rows = []
        for u in chosen:
            own = self.rows_by_unit[int(u)]
            if len(own) > self.cap:
                own = sorted(int(i) for i in rng.choice(own, size=self.cap, replace=False))
            rows.append(list(own))
        return StepSample([int(u) for u in chosen], rows)


def group_rows(row_units: Sequence[str]) -> tuple[list[str], list[list[int]]]:
    """Units in first-seen order, and the row indices of each."""
    index: dict[str, int] = {}
    rows: list[list[int]] = []
    for i, unit in enumerate(row_units):
        if unit not in index:
            index[unit] = len(rows)
            rows.append([])
        rows[index[unit]].append(i)
    return list(index), rows


# -- the guard (opacus#820: loss and ε look normal while the adapter never changes) -----------


@dataclass(frozen=True)
class WeightsSnapshot:
    trainable: dict[str, Any]  # name -> a copy (LoRA tensors are small)
    frozen: dict[str, str]  # name -> digest of the bytes (the base model is not copied)


def _digest(tensor: Any) -> str:
    import torch  # noqa: PLC0415 - heavy (torch)

    flat = tensor.detach().reshape(-1).contiguous().cpu()
    data = flat.view(torch.uint8).numpy() if flat.numel() else b""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def snapshot(model: Any) -> WeightsSnapshot:
    trainable, frozen = {}, {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            trainable[name] = param.detach().clone()
        else:
            frozen[name] = _digest(param)
    return WeightsSnapshot(trainable, frozen)


def _names(names: Sequence[str], total: int) -> str:
    shown = ", ".join(names[:2])
    return f"{len(names)} of {total} ({shown}{', …' if len(names) > 2 else ''})"


def check_first_step(before: WeightsSnapshot, model: Any, step: int) -> None:
    """Raise unless only LoRA weights are trainable, every one of them moved, and no base
    weight changed."""
    after = snapshot(model)
    not_lora = [n for n in after.trainable if "lora_" not in n]
    if not_lora:
        shown = _names(not_lora, len(after.trainable))
        raise TrainingGuardError(
            f"private training: non-LoRA weights are trainable ({shown}); "
            "only the adapter may train"
        )
    still = [
        n
        for n, w in before.trainable.items()
        if n in after.trainable and bool((after.trainable[n] == w).all())
    ]
    if still or not after.trainable:
        raise TrainingGuardError(
            f"private training: after step {step} the LoRA weights did not move "
            f"({_names(still, len(before.trainable))} unchanged): the adapter would be useless "
            "while loss and ε look normal (opacus#820); check that lr > 0 and that the model "
            "is on its device before the adapter is attached"
        )
    changed = [n for n, d in before.frozen.items() if after.frozen.get(n) != d]
    if changed:
        raise TrainingGuardError(
            f"private training: after step {step} base weights changed "
            f"({_names(changed, len(before.frozen))}); only the adapter may train"
        )
