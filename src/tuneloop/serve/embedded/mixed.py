"""One forward pass for the running rows' next tokens and chunks of arriving prompts.

A CPU forward pass of a small model reads every weight once, whatever its batch: a decode step
of four rows (~65 ms for SmolLM2 on two cores) is mostly that read. Prefilling an arriving
prompt in a pass of its own pays the read again and stalls the running rows for the whole pass;
a 6,000-token prompt stalled four streams for 70 s. Here the rows' tokens and the prompt chunks'
tokens go through the model's projections and MLPs together, one token per batch entry (so
peft's ``adapter_names`` picks each token's adapter), and only attention is done per sequence:
each running row against the batch's cache, each chunk against its own prompt's cache. The
model's own modules do everything else, through transformers' attention-function registry and a
cache object whose ``update`` files each token's keys where its sequence keeps them.

Models whose attention goes through that registry with a full-attention cache (the Llama family:
Llama, SmolLM2, Qwen2/3, Mistral without a sliding window, Granite) are fused; others get the
same chunks in passes of their own (still bounded, just not free).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch.nn.functional import scaled_dot_product_attention
from transformers import AttentionInterface, DynamicCache

if TYPE_CHECKING:
    from tuneloop.serve.embedded.rows import Row

NAME = "tuneloop_mixed"
FUSED_TYPES = frozenset({"llama", "qwen2", "qwen3", "mistral", "granite"})


class PromptCache:
    """One prompt's keys and values, in buffers as long as the prompt, written in place.

    A DynamicCache concatenates at every update: reading a 6,000-token prompt eight tokens a
    step copied its whole cache (276 MB for SmolLM2) at every step, more than the step's own
    arithmetic. Here a chunk is written into its place and attention reads a view."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def update(
        self, keys: torch.Tensor, values: torch.Tensor, layer_idx: int, past: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``keys`` [1, kv_heads, n, head_dim] at ``past``; return everything so far."""
        if layer_idx == len(self.keys):
            shape = (*keys.shape[:2], self.length, keys.shape[-1])
            self.keys.append(keys.new_empty(shape))
            self.values.append(values.new_empty(shape))
        end = past + keys.shape[-2]
        room = self.keys[layer_idx].shape[-2]
        if end > room:  # a lane past what it was sized for
            self._grow(layer_idx, past, max(end, room + room // 2))
        self.keys[layer_idx][..., past:end, :] = keys
        self.values[layer_idx][..., past:end, :] = values
        return self.keys[layer_idx][..., :end, :], self.values[layer_idx][..., :end, :]

    def _grow(self, layer_idx: int, past: int, length: int) -> None:
        for held in (self.keys, self.values):
            old = held[layer_idx]
            held[layer_idx] = old.new_empty((*old.shape[:2], length, old.shape[-1]))
            held[layer_idx][..., :past, :] = old[..., :past, :]

    def upto(self, n: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Each layer's keys and values of the first ``n`` tokens (views, not copies)."""
        return [k[..., :n, :] for k in self.keys], [v[..., :n, :] for v in self.values]

    def as_dynamic(self, config: Any, n: int) -> Any:
        """The first ``n`` tokens as the running batch keeps caches (when it starts one)."""
        cache = DynamicCache(config=config)
        for i, (k, v) in enumerate(zip(*self.upto(n), strict=True)):
            cache.update(k, v, i)
        return cache


@dataclass
class Segment:
    """Part of one prompt in this pass: its tokens, and its own cache of what came before."""

    cache: PromptCache
    ids: list[int]
    past: int  # tokens of this prompt already in ``cache``

    @property
    def causal(self) -> bool:
        """Nothing before and more than one token: the kernels' own causal mask does."""
        return self.past == 0 and len(self.ids) > 1

    @property
    def mask(self) -> torch.Tensor | None:
        """Causal over the whole prompt so far (None: the kernels' causal mask, or one token
        that sees everything before it)."""
        if self.past == 0 or len(self.ids) == 1:
            return None
        n, total = len(self.ids), self.past + len(self.ids)
        visible = torch.arange(total)[None, :] <= torch.arange(n)[:, None] + self.past
        return visible[None, None]


@dataclass(eq=False)
class Lane:
    """A row of a long prompt generating in its own cache, beside the batch.

    Joining the rectangular, left-padded batch cache would pad every other row to the long
    prompt's width: a 6,000-token prompt joining four short rows copied ~1.4 GB (a 0.8 s stall)
    and made each later step attend over 6,000 columns per row (~4× a plain step) until it
    ended. In a lane its one token a step is a segment of the fused pass: only it reads its
    cache."""

    row: Row
    cache: PromptCache
    length: int  # tokens in ``cache``

    def segment(self) -> Segment:
        return Segment(self.cache, [self.row.last], self.length)


@dataclass
class MixedCache:
    """Where each token's keys and values go: a running row's into the batch cache, a chunk's
    into its prompt's cache. Attention reads them back from ``current``."""

    batch: Any  # the running batch's DynamicCache, or None
    rows: int
    row_mask: torch.Tensor | None  # [rows, 1, 1, columns] bool
    segments: Sequence[Segment]
    current: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=dict)

    def update(
        self, keys: torch.Tensor, values: torch.Tensor, layer_idx: int, *_: Any, **__: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``keys`` [tokens, kv_heads, 1, head_dim]: the rows' tokens first, then each chunk's."""
        found: list[tuple[torch.Tensor, torch.Tensor]] = []
        if self.rows:
            r = self.rows
            found.append(self.batch.layers[layer_idx].update(keys[:r], values[:r]))
        start = self.rows
        for seg in self.segments:
            end = start + len(seg.ids)
            k, v = (t[start:end].permute(2, 1, 0, 3) for t in (keys, values))
            found.append(seg.cache.update(k, v, layer_idx, seg.past))
            start = end
        self.current[layer_idx] = found
        return keys, values


def mixed_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention per sequence; ``query`` is [tokens, heads, 1, head_dim], one token per entry.
    Returns [tokens, 1, heads, head_dim], as transformers' attention functions do."""
    mixed: MixedCache = kwargs[NAME]
    found = mixed.current[module.layer_idx]
    outs = []
    if mixed.rows:
        k, v = found[0]
        q = query[: mixed.rows]
        out = scaled_dot_product_attention(q, k, v, attn_mask=mixed.row_mask, scale=scaling,
                                           enable_gqa=True)  # fmt: skip
        outs.append(out.transpose(1, 2))
    start = mixed.rows
    for seg, (k, v) in zip(mixed.segments, found[1 if mixed.rows else 0 :], strict=True):
        end = start + len(seg.ids)
        q = query[start:end].permute(2, 1, 0, 3)
        mask = seg.mask
        out = scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=seg.causal,
                                           scale=scaling, enable_gqa=True)  # fmt: skip
        outs.append(out.permute(2, 0, 1, 3))
        start = end
    return torch.cat(outs, dim=0), None


def _register() -> None:
    AttentionInterface.register(NAME, mixed_attention)


def fusable(model: Any) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config
    sliding = getattr(config, "sliding_window", None) and getattr(
        config, "use_sliding_window", True
    )
    return config.model_type in FUSED_TYPES and not sliding and hasattr(base, "model")


def fused_forward(
    model: Any,
    mixed: MixedCache,
    ids: list[int],
    positions: list[int],
    keep: list[int],
    cache_kw: str = "cache",
) -> torch.Tensor:
    """Run the pass; return the logits of the tokens at ``keep`` (the rows' and each finished
    prompt's last token). The caller sets the adapters (peft's hooks or the active adapter)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config
    previous = config._attn_implementation
    config._attn_implementation = NAME
    try:
        with torch.inference_mode():
            hidden = base.model(
                input_ids=torch.tensor(ids, dtype=torch.long)[:, None],
                position_ids=torch.tensor(positions, dtype=torch.long)[:, None],
                attention_mask=torch.zeros(1, 1, 1, 1),  # a 4D mask is passed through unread
                use_cache=True,
                **{cache_kw: mixed, NAME: mixed},
            ).last_hidden_state
            logits: torch.Tensor = base.lm_head(hidden[keep, 0])
    finally:
        config._attn_implementation = previous
    return logits


_register()
