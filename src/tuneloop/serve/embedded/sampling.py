"""Choosing one row's next token: OpenAI's logits processors, then greedy or nucleus sampling.

The order is vLLM's: logit bias, then presence and frequency penalties over the tokens this
row has generated so far, then temperature and top-p. The log-probabilities a client asks for
are those of the model's own distribution, before any processor (vLLM's default,
``raw_logprobs``): what the model thought, not what the sampler was told to prefer.

Every sampled row owns a ``torch.Generator``: a request that passes ``seed`` gets the same
answer whatever else shares its batch. Everything here belongs to one row; whatever raises
fails that row alone (the scheduler catches it per row).
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


class RowSampler:
    """One row's sampling state: its generator, the counts its penalties need, its bias."""

    def __init__(self, params: SamplingParams, vocab: int) -> None:
        self.params = params
        self.generator = generator_for(params)
        penalised = params.presence_penalty != 0.0 or params.frequency_penalty != 0.0
        self.counts = torch.zeros(vocab) if penalised else None
        self.bias: tuple[torch.Tensor, torch.Tensor] | None = None
        if params.logit_bias:
            ids, values = zip(*params.logit_bias, strict=True)
            self.bias = torch.tensor(ids, dtype=torch.long), torch.tensor(values)

    @property
    def plain(self) -> bool:
        """Greedy with no processor: the batch's one argmax gives this row's token."""
        return self.generator is None and self.counts is None and self.bias is None

    def choose(self, logits: torch.Tensor, greedy: int, allowed: torch.Tensor | None = None) -> int:
        """The next token from this row's logits [vocab]; ``greedy`` is their argmax;
        ``allowed`` (a bool mask) the tokens a grammar permits."""
        if self.plain and allowed is None:
            token = greedy
        else:
            x = self.processed(logits)
            if allowed is not None:
                x = x.masked_fill(~allowed, float("-inf"))
            if self.generator is None:
                token = int(x.argmax())
            else:
                token = _sample(x, self.params, self.generator)
        if self.counts is not None:
            self.counts[token] += 1
        return token

    def processed(self, logits: torch.Tensor) -> torch.Tensor:
        x = logits.float()
        if self.bias is not None:
            x = x.index_add(0, self.bias[0], self.bias[1])
        if self.counts is not None:
            p = self.params
            x = x - p.frequency_penalty * self.counts - p.presence_penalty * (self.counts > 0)
        return x


def _sample(logits: torch.Tensor, params: SamplingParams, gen: torch.Generator) -> int:
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        outside = sorted_p.cumsum(0) - sorted_p > params.top_p  # keep the first token always
        sorted_p[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_p)
    return int(torch.multinomial(probs, 1, generator=gen).item())


def logprobs_of(logits: torch.Tensor, token: int, k: int) -> tuple[float, list[tuple[int, float]]]:
    """The chosen token's log-probability under the model and the ``k`` likeliest tokens'."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    top: list[tuple[int, float]] = []
    if k:
        values, ids = logp.topk(k)
        top = list(zip(ids.tolist(), values.tolist(), strict=True))
    return float(logp[token]), top
