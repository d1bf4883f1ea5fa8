"""Continuing from production's adapter instead of a fresh one (``train.init_from``).

A weekly loop that starts every round from zero throws away what earlier rounds learned and
pays for it again; continuing from the adapter in production keeps it, and the replay buffer
keeps earlier rounds in the mix so that continuing does not mean forgetting. The adapter is
used only when it fits: trained on the same base weights, with the same rank and target
modules, and not tainted by an erasure (its weights hold the erased data). Otherwise the run
starts fresh and says why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneloop.registry import ModelVersion, Registry
from tuneloop.train.adapter import adapter_weights
from tuneloop.train.lora import LoraSettings, targets_for


@dataclass(frozen=True)
class WarmStart:
    version: str | None
    adapter_sha256: str | None
    folder: Path | None
    note: str
    dataset: str | None = None  # the dataset version the adapter was trained on

    def lineage(self) -> dict[str, Any]:
        return {"version": self.version, "adapter_sha256": self.adapter_sha256, "note": self.note}


def _fits(folder: Path, settings: LoraSettings, model_type: str) -> str | None:
    """Why the adapter cannot seed this run, or None when it can."""
    cfg = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    wanted = set(targets_for(model_type, settings))
    if cfg.get("r") != settings.r or set(cfg.get("target_modules") or ()) != wanted:
        shape = f"r={cfg.get('r')}, {sorted(cfg.get('target_modules') or ())}"
        return f"its LoRA shape ({shape}) differs"
    return None


def warm_start(
    registry: Registry,
    base_sha256: str,
    settings: LoraSettings,
    model_type: str,
    cache: Path,
    require_private: bool = False,
) -> WarmStart:
    """Production's verified adapter when it fits this run; else a fresh start, with why.

    A private run (``require_private``) continues only from an adapter that was trained
    privately too: continuing from a non-private one would carry its data out unprotected.
    """
    production = registry.aliases().get("production")
    if production is None:
        return WarmStart(None, None, None, "fresh: nothing in production yet")
    mv: ModelVersion = registry.get(production)
    if mv.tainted:
        return WarmStart(None, None, None, f"fresh: production v{production} is tainted")
    if require_private and "privacy" not in mv.lineage.hyperparameters:
        return WarmStart(None, None, None, f"fresh: v{production} was not trained privately")
    if mv.lineage.base_sha256 != base_sha256:
        return WarmStart(None, None, None, f"fresh: v{production} was trained on other weights")
    folder = registry.fetch_adapter(production, cache / f"v{production}-{mv.adapter_sha256[:12]}")
    why = _fits(folder, settings, model_type)
    if why:
        return WarmStart(None, None, None, f"fresh: v{production}'s {why}")
    return WarmStart(production, mv.adapter_sha256, folder, f"continued from v{production}",
                     mv.lineage.dataset_version)  # fmt: skip


def load_into(model: Any, folder: Path) -> None:
    """Copy the adapter's weights into the peft model's (same-shaped) fresh adapter."""
    from peft import set_peft_model_state_dict  # noqa: PLC0415 - heavy (peft)

    result = set_peft_model_state_dict(model, adapter_weights(folder))
    extra = list(getattr(result, "unexpected_keys", []) or [])
    if extra:
        raise ValueError(f"adapter {folder} has weights this model lacks: {extra[:3]}")
