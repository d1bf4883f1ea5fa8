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
        width = max(self.columns, other.columns)
        for mine, theirs in zip(_layers(self.cache), _layers(other.cache), strict=True):
            mine.keys = torch.cat([_left(mine.keys, width), _left(theirs.keys, width)])
            mine.values = torch.cat([_left(mine.values, width), _left(theirs.values, width)])
        self.mask = torch.cat([_left_mask(self.mask, width), _left_mask(other.mask, width)])
        self.positions = torch.cat([self.positions, other.positions])

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


def _left(x: torch.Tensor, width: int) -> torch.Tensor:
    """[rows, heads, columns, dim] padded with zeros on the left to ``width`` columns."""
    missing = width - int(x.shape[-2])
    return x if missing == 0 else pad(x, (0, 0, missing, 0))


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
