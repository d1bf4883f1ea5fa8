"""LoRA factor arithmetic for aggregation: pairs of A/B tensors, weighted means, ΔW = B·A.

Adapters travel as ``{peft state-dict key: array}``. A module's update is ``ΔW = B·A`` (times
the LoRA scale, the same for every site), so what aggregation should average is ``B_i·A_i``.
Averaging the factors instead gives ``mean(B_i)·mean(A_i)``, which differs by the cross terms
``B_i·A_j`` (i ≠ j); :func:`product_error` measures that gap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from tuneloop.errors import ConfigError

Arrays = dict[str, np.ndarray[Any, Any]]
Aggregation = Literal["ffa", "naive"]
AGGREGATIONS: tuple[Aggregation, ...] = ("ffa", "naive")
A_MARK, B_MARK = "lora_A", "lora_B"


def aggregation_of(text: str) -> Aggregation:
    """The aggregation named by ``text``, or a one-line error naming the choices."""
    for known in AGGREGATIONS:
        if text == known:
            return known
    raise ConfigError(f"aggregation {text!r}: use one of {', '.join(AGGREGATIONS)}")


def is_lora_key(key: str) -> bool:
    """A peft LoRA factor's state-dict key (the only tensors allowed to leave a site)."""
    return f".{A_MARK}." in key or f".{B_MARK}." in key


def pairs(keys: Sequence[str]) -> dict[str, tuple[str, str]]:
    """{module prefix: (A key, B key)} for every adapted module."""
    out: dict[str, tuple[str, str]] = {}
    for key in keys:
        if f".{A_MARK}." in key:
            prefix, _, suffix = key.partition(f".{A_MARK}.")
            b_key = f"{prefix}.{B_MARK}.{suffix}"
            if b_key in keys:
                out[prefix] = (key, b_key)
    return out


def trained_keys(keys: Sequence[str], aggregation: Aggregation) -> list[str]:
    """The keys a site trains and sends: B only under FFA (A stays the shared frozen init)."""
    lora = [k for k in keys if is_lora_key(k)]
    if aggregation == "ffa":
        return [k for k in lora if f".{B_MARK}." in k]
    return lora


def weighted_mean(
    states: Sequence[Mapping[str, np.ndarray[Any, Any]]], weights: Sequence[float]
) -> Arrays:
    """Σ w_i·x_i / Σ w_i per key, in float64 (then back to the inputs' dtype)."""
    total = float(sum(weights))
    if total <= 0 or len(states) != len(weights):
        raise ValueError("weighted mean needs one positive weight per state")
    out: Arrays = {}
    for key in states[0]:
        acc = sum(
            np.asarray(s[key], dtype=np.float64) * (w / total)
            for s, w in zip(states, weights, strict=True)
        )
        out[key] = np.asarray(acc, dtype=np.asarray(states[0][key]).dtype)
    return out


def apply_update(
    global_arrays: Mapping[str, np.ndarray[Any, Any]], delta: Mapping[str, np.ndarray[Any, Any]]
) -> Arrays:
    """The next global adapter: every tensor plus its averaged change (untouched if none)."""
    return {
        k: np.asarray(v + delta[k] if k in delta else v, dtype=np.asarray(v).dtype)
        for k, v in global_arrays.items()
    }


def products(state: Mapping[str, np.ndarray[Any, Any]]) -> Arrays:
    """ΔW = B·A per module (without the LoRA scale, which every site shares)."""
    keys = list(state)
    return {
        prefix: np.asarray(state[b], dtype=np.float64) @ np.asarray(state[a], dtype=np.float64)
        for prefix, (a, b) in pairs(keys).items()
    }


def product_error(
    locals_: Sequence[Mapping[str, np.ndarray[Any, Any]]],
    weights: Sequence[float],
    aggregate: Mapping[str, np.ndarray[Any, Any]],
) -> float:
    """‖B̄·Ā − mean(B_i·A_i)‖ / ‖mean(B_i·A_i)‖ over all modules: 0 when aggregation is exact.

    ``locals_`` are the sites' full adapters after local training; ``aggregate`` the result.
    """
    wanted = weighted_mean([products(s) for s in locals_], weights)
    got = products(aggregate)
    num = sum(float(np.sum((got[k] - wanted[k]) ** 2)) for k in wanted)
    den = sum(float(np.sum(wanted[k] ** 2)) for k in wanted)
    return float(np.sqrt(num / den)) if den > 0 else 0.0
