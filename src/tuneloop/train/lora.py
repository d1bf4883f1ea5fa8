"""LoRA settings, with target modules chosen per architecture."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Attention projections by model type: the usual LoRA targets, and enough for most tasks.
TARGETS: dict[str, tuple[str, ...]] = {
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "mistral": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "qwen2": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "gemma": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "phi3": ("qkv_proj", "o_proj"),
    "gpt2": ("c_attn", "c_proj"),
    "gpt_neox": ("query_key_value", "dense"),
}


@dataclass(frozen=True)
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None  # None: by architecture

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def targets_for(model_type: str, settings: LoraSettings) -> list[str]:
    if settings.target_modules:
        return list(settings.target_modules)
    if model_type not in TARGETS:
        raise ValueError(
            f"no default LoRA targets for model type {model_type!r}; set target_modules"
        )
    return list(TARGETS[model_type])


def with_lora(model: Any, settings: LoraSettings) -> Any:
    """The base model wrapped by peft with a fresh LoRA adapter (only the adapter trains)."""
    from peft import LoraConfig, get_peft_model  # noqa: PLC0415 - heavy (peft)

    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets_for(model.config.model_type, settings),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)
