"""Choosing each row's next token: greedy at temperature 0 (or near it), else nucleus sampling.

Every sampled row owns a ``torch.Generator``: a request that passes ``seed`` gets the same
answer whatever else shares its batch.
"""

from __future__ import annotations

import torch

from tuneloop.serve.generation import SamplingParams

# Below this, logits / temperature overflows to inf: such a temperature means greedy anyway.
MIN_TEMPERATURE = 1e-4


def generator_for(params: SamplingParams) -> torch.Generator | None:
    if params.temperature < MIN_TEMPERATURE:
        return None
    gen = torch.Generator()
    if params.seed is None:
        gen.seed()
    else:
        gen.manual_seed(params.seed)
    return gen


def next_tokens(
    logits: torch.Tensor,
    params: list[SamplingParams],
    generators: list[torch.Generator | None],
) -> list[int]:
    """One token per row of ``logits`` [rows, vocab]."""
    greedy = logits.argmax(dim=-1).tolist()
    out: list[int] = []
    for row, (p, gen) in enumerate(zip(params, generators, strict=True)):
        if gen is None:
            out.append(int(greedy[row]))
        else:
            out.append(_sample(logits[row].float(), p, gen))
    return out


def _sample(logits: torch.Tensor, params: SamplingParams, gen: torch.Generator) -> int:
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        outside = sorted_p.cumsum(0) - sorted_p > params.top_p  # keep the first token always
        sorted_p[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_p)
    return int(torch.multinomial(probs, 1, generator=gen).item())
