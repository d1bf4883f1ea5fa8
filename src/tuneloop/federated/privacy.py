"""Clipping and Gaussian noise of a site's adapter update, before it leaves the site.

The update (local minus global tensors) is scaled to an L2 norm of at most ``clip`` over all
its tensors, then every coordinate gets N(0, (noise·clip)²). The aggregator then never sees an
update whose influence exceeds ``clip``, and each round is a Gaussian mechanism on the site's
whole contribution: a *site-level* guarantee towards the aggregator (the unit is the site's
dataset, not one user; user-level DP inside a site is ``[train.privacy]``'s job).
:func:`site_epsilon` composes the rounds with the RDP accountant of Opacus.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tuneloop.errors import ConfigError, needs_extra
from tuneloop.federated.factors import Arrays


@dataclass(frozen=True)
class UpdatePrivacy:
    """``clip`` None: updates leave as they are. ``noise``: the multiplier σ (std = σ·clip)."""

    clip: float | None = None
    noise: float = 0.0
    delta: float = 1e-5

    def __post_init__(self) -> None:
        if self.clip is not None and not self.clip > 0:
            raise ConfigError(f"--clip must be > 0, got {self.clip}")
        if not self.noise >= 0:
            raise ConfigError(f"--noise must be >= 0, got {self.noise}")
        if self.noise > 0 and self.clip is None:
            raise ConfigError("--noise needs --clip: noise is calibrated to the clipping norm")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def l2_norm(update: Mapping[str, np.ndarray[Any, Any]]) -> float:
    return float(
        np.sqrt(sum(float(np.sum(np.square(v, dtype=np.float64))) for v in update.values()))
    )


def clip_and_noise(
    update: Mapping[str, np.ndarray[Any, Any]],
    privacy: UpdatePrivacy,
    rng: np.random.Generator | None = None,
) -> tuple[Arrays, float]:
    """The update as it may leave the site, and its norm before clipping.

    The noise draws from fresh OS entropy unless ``rng`` is given (tests): noise anyone can
    regenerate from a seed protects nothing.
    """
    norm = l2_norm(update)
    if privacy.clip is None:
        return dict(update), norm
    scale = min(1.0, privacy.clip / norm) if norm > 0 else 1.0
    gen = rng if rng is not None else np.random.default_rng()
    std = privacy.noise * privacy.clip
    out: Arrays = {}
    for key, value in update.items():
        noisy = value.astype(np.float64) * scale
        if std > 0:
            noisy = noisy + gen.normal(0.0, std, size=value.shape)
        out[key] = noisy.astype(value.dtype)
    return out, norm


def site_epsilon(privacy: UpdatePrivacy, rounds: int) -> float | None:
    """ε at ``delta`` of ``rounds`` Gaussian releases of one site's clipped update (None: no
    noise, no guarantee)."""
    if privacy.clip is None or privacy.noise <= 0:
        return None
    with needs_extra("privacy", "noised federated updates (--noise)"):
        from opacus.accountants.analysis.rdp import (  # noqa: PLC0415 - opacus: [privacy] extra
            compute_rdp,
            get_privacy_spent,
        )

    orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 128))
    rdp = compute_rdp(q=1.0, noise_multiplier=privacy.noise, steps=rounds, orders=orders)
    eps, _ = get_privacy_spent(orders=orders, rdp=rdp, delta=privacy.delta)
    return float(eps)
