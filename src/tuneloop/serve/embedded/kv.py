"""The running batch's KV cache: rows join, left-padded to one length, and leave between steps.

Every row's tokens end in the last column, so one decode step feeds one new token per row.
A row that joins is padded on the left (its padding is masked out, its position ids start at
0 at its first real token); a row that leaves is cut out, and columns that only padding still
uses are trimmed so that compute follows the live rows, not the longest row ever seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.functional import pad

from tuneloop.errors import TuneloopError


def _layers(cache: Any) -> list[Any]:
    layers = list(getattr(cache, "layers", []))
    for layer in layers:
        if type(layer).__name__ != "DynamicLayer":
            raise TuneloopError(
                f"the embedded backend batches full-attention caches only, not "
                f"{type(layer).__name__}; serve this model through vLLM (serve.backend = 'vllm')"
            )
    return layers


@dataclass
class KVBatch:
    """The cache, attention mask [rows, columns] and next position id of every running row."""

    cache: Any
    mask: torch.Tensor
    positions: torch.Tensor

    @property
    def rows(self) -> int:
        return int(self.mask.shape[0])

    @property
    def columns(self) -> int:
        return int(self.mask.shape[1])

    def step_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The attention mask and position ids for one more token per row."""
        ones = torch.ones((self.rows, 1), dtype=self.mask.dtype)
        return torch.cat([self.mask, ones], dim=1), self.positions[:, None]

    def advance(self, step_mask: torch.Tensor) -> None:
        """After a step: the new column is part of every row."""
        self.mask = step_mask
        self.positions = self.positions + 1

    def extend(self, other: KVBatch) -> None:
        """Append other's rows, left-padding whichever side is shorter."""
        theirs = _layers(other.cache)
        self.extend_with([t.keys for t in theirs], [t.values for t in theirs], other.mask,
                         other.positions)  # fmt: skip

    def extend_with(
        self,
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
        mask: torch.Tensor,
        positions: torch.Tensor,
    ) -> None:
        """Append rows given as per-layer tensors [rows, heads, columns, dim]. Each layer is
        written once into a tensor of the final shape: a 6,000-token prompt joining four rows
        used to pad and concatenate through three copies of the whole cache (~1 s)."""
        width = max(self.columns, int(mask.shape[1]))
        for mine, k, v in zip(_layers(self.cache), keys, values, strict=True):
            mine.keys = _stacked(mine.keys, k, width)
            mine.values = _stacked(mine.values, v, width)
        self.mask = torch.cat([_left_mask(self.mask, width), _left_mask(mask, width)])
        self.positions = torch.cat([self.positions, positions])

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (in that order), then trim columns no kept row uses."""
        index = torch.tensor(rows, dtype=torch.long)
        mask = self.mask.index_select(0, index)
        used = mask.any(dim=0)
        start = int(used.to(torch.int8).argmax()) if bool(used.any()) else mask.shape[1]
        for layer in _layers(self.cache):
            layer.keys = layer.keys.index_select(0, index)[..., start:, :]
            layer.values = layer.values.index_select(0, index)[..., start:, :]
        self.mask = mask[:, start:]
        self.positions = self.positions.index_select(0, index)


def _stacked(a: torch.Tensor, b: torch.Tensor, width: int) -> torch.Tensor:
    """``a``'s rows then ``b``'s, each right-aligned in ``width`` columns, zeros on the left."""
    rows_a, rows_b = int(a.shape[0]), int(b.shape[0])
    out = a.new_zeros((rows_a + rows_b, a.shape[1], width, a.shape[3]))
    out[:rows_a, :, width - a.shape[2] :] = a
    out[rows_a:, :, width - b.shape[2] :] = b
    return out


def _left_mask(mask: torch.Tensor, width: int) -> torch.Tensor:
    missing = width - int(mask.shape[1])
    return mask if missing == 0 else pad(mask, (missing, 0))


def left_padded(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask of prompts, right-aligned in one tensor."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    return ids, mask


def positions_of(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each row's first real token (padding gets 0 too)."""
    return (mask.cumsum(dim=1) - 1).clamp(min=0)
