"""The embedded backend's step-level batching gives exactly what one-at-a-time ``generate`` gives.

Rows join a running batch between steps (left-padded), leave it when done, and use different
adapters in one forward pass; greedy answers must not depend on any of that.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import torch

from tuneloop.serve.embedded import EmbeddedBackend
from tuneloop.serve.embedded.scheduler import BASE_ADAPTER
from tuneloop.serve.generation import (
    Delta,
    Finished,
    GenerationRequest,
    QueueFullError,
    SamplingParams,
)

from support.liveserver import tiny_adapter
from support.tiny import TinyModels

PROMPTS = [
    "the card was lost yesterday",
    "please reset my password",
    "what is the fee for a wire transfer abroad and how long does it take",
    "thank you",
    "I need a new one",
    "reset",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, tiny_talker: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("engine")
    base = tiny_talker
    return {
        "base": base,
        "a1": tiny_adapter(base, root / "a1", seed=1),
        "a2": tiny_adapter(base, root / "a2", seed=2),
    }


def request(i: int, adapter: str | None, max_tokens: int = 10, **kw: Any) -> GenerationRequest:
    messages = ({"role": "user", "content": PROMPTS[i % len(PROMPTS)]},)
    return GenerationRequest(str(i), messages, adapter, SamplingParams(max_tokens, **kw))


async def run(backend: EmbeddedBackend, req: GenerationRequest, delay: float = 0.0) -> Finished:
    await asyncio.sleep(delay)
    async for event in backend.submit(req):
        if isinstance(event, Finished):
            return event
    raise AssertionError("no Finished event")


def reference(tiny: dict[str, Path], req: GenerationRequest) -> str:
    """The same request answered alone by plain generate(), adapter merged in by peft."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny["base"])
    model: Any = AutoModelForCausalLM.from_pretrained(tiny["base"])
    if req.adapter:
        model = PeftModel.from_pretrained(model, str(tiny[req.adapter]))
    model.eval()
    ids = tok.apply_chat_template(
        list(req.messages), tokenize=True, add_generation_prompt=True, return_dict=False
    )
    with torch.inference_mode():
        out = model.generate(
            input_ids=torch.tensor([ids]),
            max_new_tokens=req.params.max_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        )
    return str(tok.decode(out[0, len(ids) :], skip_special_tokens=True))


async def backend_with_adapters(tiny: dict[str, Path], **kw: Any) -> EmbeddedBackend:
    """The tiny model with adapters a1 and a2 loaded."""
    backend = EmbeddedBackend.load(str(tiny["base"]), "tiny", **kw)
    await backend.load_adapter("a1", tiny["a1"])
    await backend.load_adapter("a2", tiny["a2"])
    return backend


@pytest.mark.parametrize(
    ("n", "max_batch", "stagger"),
    [(6, 8, 0.0), (6, 2, 0.0), (6, 4, 0.03), (5, 3, 0.07)],
    ids=["all-at-once", "queued", "joining", "joining-and-queued"],
)
def test_batched_answers_equal_one_at_a_time_generate(
    tiny: dict[str, Path], n: int, max_batch: int, stagger: float
) -> None:
    adapters = [None, "a1", "a2"]
    reqs = [request(i, adapters[i % 3], max_tokens=4 + 3 * (i % 3)) for i in range(n)]

    async def main() -> list[Finished]:
        backend = await backend_with_adapters(tiny, max_batch=max_batch)
        try:
            return await asyncio.gather(*(run(backend, r, stagger * i) for i, r in enumerate(reqs)))
        finally:
            await backend.close()

    results = asyncio.run(main())
    for req, got in zip(reqs, results, strict=True):
        assert got.text == reference(tiny, req), (req.adapter, req.messages)
        assert got.completion_tokens <= req.params.max_tokens


def test_adapters_change_answers_and_base_rows_skip_them(tiny: dict[str, Path]) -> None:
    async def main() -> list[Finished]:
        backend = await backend_with_adapters(tiny)
        try:
            return await asyncio.gather(*(run(backend, request(0, a)) for a in (None, "a1", "a2")))
        finally:
            await backend.close()

    texts = [f.text for f in asyncio.run(main())]
    assert len(set(texts)) == 3  # each adapter really is applied to its own row only
    assert BASE_ADAPTER == "__base__"


def test_cancelled_stream_frees_its_slot(tiny: dict[str, Path]) -> None:
    async def main() -> tuple[str, int, int]:
        backend = EmbeddedBackend.load(str(tiny["base"]), "tiny", max_batch=1)
        try:
            long = backend.submit(request(0, None, max_tokens=200))
            async for event in long:
                if isinstance(event, Delta):
                    break
            waiting = backend.stats().waiting
            second = asyncio.create_task(run(backend, request(1, None, max_tokens=3)))
            await asyncio.sleep(0.05)
            assert backend.stats().waiting == 1  # the long one holds the only slot
            long.cancel()
            reason = "?"
            async for event in long:
                if isinstance(event, Finished):
                    reason = event.reason
            done = await asyncio.wait_for(second, 30)
            return reason, waiting, done.completion_tokens
        finally:
            await backend.close()

    reason, waiting, tokens = asyncio.run(main())
    assert (reason, waiting) == ("cancelled", 0)
    assert tokens >= 1


def test_a_full_queue_refuses_with_a_retry_delay(tiny: dict[str, Path]) -> None:
    async def main() -> float:
        backend = EmbeddedBackend.load(str(tiny["base"]), "tiny", max_batch=1, max_waiting=1)
        streams = []
        try:
            with pytest.raises(QueueFullError) as caught:
                for i in range(10):
                    streams.append(backend.submit(request(i, None, max_tokens=100)))
            return caught.value.retry_after
        finally:
            for s in streams:
                s.cancel()
            await backend.close()

    assert asyncio.run(main()) >= 1.0


def test_seeded_sampling_does_not_depend_on_batch_companions(tiny: dict[str, Path]) -> None:
    seeded = request(2, "a1", max_tokens=8, temperature=0.9, top_p=0.9, seed=7)

    async def main() -> tuple[str, str]:
        backend = await backend_with_adapters(tiny)
        try:
            alone = await run(backend, seeded)
            crowd = [request(i, "a2", max_tokens=8, temperature=1.0) for i in range(3)]
            together = await asyncio.gather(run(backend, seeded), *(run(backend, r) for r in crowd))
            return alone.text, together[0].text
        finally:
            await backend.close()

    alone, together = asyncio.run(main())
    assert alone == together


def test_unloading_the_last_adapter_returns_to_the_bare_model(tiny: dict[str, Path]) -> None:
    async def main() -> tuple[list[str], list[str], str, str]:
        backend = await backend_with_adapters(tiny)
        try:
            before = backend.adapters()
            base_answer = (await run(backend, request(0, None))).text
            await backend.unload_adapter("a1")
            await backend.unload_adapter("a2")
            after_answer = (await run(backend, request(0, None))).text
            return before, backend.adapters(), base_answer, after_answer
        finally:
            await backend.close()

    before, after, base_answer, after_answer = asyncio.run(main())
    assert (before, after) == (["a1", "a2"], [])
    assert base_answer == after_answer


@pytest.mark.parametrize("temperature", [4.5e-48, 1e-6, 0.0])
def test_a_vanishing_temperature_decodes_greedily(
    tiny: dict[str, Path], temperature: float
) -> None:
    async def main() -> tuple[str, str]:
        backend = EmbeddedBackend.load(str(tiny["base"]), "tiny")
        try:
            greedy = await run(backend, request(1, None))
            tiny_t = await run(backend, request(1, None, temperature=temperature))
            return greedy.text, tiny_t.text
        finally:
            await backend.close()

    greedy, got = asyncio.run(main())
    assert got == greedy


def test_penalties_and_bias_change_the_logits_as_openai_defines_them() -> None:
    from tuneloop.serve.embedded.sampling import RowSampler

    logits = torch.tensor([5.0, 4.5, 0.0, -1.0])
    params = SamplingParams(8, frequency_penalty=1.0)
    row = RowSampler(params, vocab=4)
    assert row.choose(logits, 0) == 0
    assert row.choose(logits, 0) == 1  # token 0 now 5 - 1 = 4 < 4.5
    assert row.choose(logits, 0) == 0  # 4 vs 4.5 - 1 = 3.5
    presence = RowSampler(SamplingParams(8, presence_penalty=2.0), vocab=4)
    assert [presence.choose(logits, 0) for _ in range(3)] == [0, 1, 0]  # -2 once, not per use
    assert presence.processed(logits).tolist() == [3.0, 2.5, 0.0, -1.0]
    biased = RowSampler(SamplingParams(8, logit_bias=((3, 10.0),)), vocab=4)
    assert biased.choose(logits, 0) == 3


@pytest.fixture(scope="module")
def roomy(tmp_path_factory: pytest.TempPathFactory, tiny_models: TinyModels) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("roomy")
    base = tiny_models.get(scale=20.0, context=2048)
    return {"base": base, "a1": tiny_adapter(base, root / "a1", seed=1),
            "a2": tiny_adapter(base, root / "a2", seed=2)}  # fmt: skip


@pytest.mark.parametrize("lane_tokens", [1024, 100_000], ids=["in-a-lane", "joins-the-batch"])
def test_a_long_prompt_is_read_in_chunks_between_the_rows_steps(
    roomy: dict[str, Path], lane_tokens: int
) -> None:
    """Four rows stream; a prompt of ~1,200 tokens arrives. The rows keep getting tokens while it is
    read (a chunk per step, in the same pass), and every answer is the one it gives alone. In a
    lane, it generates beside the batch: the short rows' cache never grows to its width."""
    eos = build_eos(roomy)
    rows = [request(i, [None, "a1"][i % 2], max_tokens=300, logit_bias=((eos, -100.0),))
            for i in range(4)]  # fmt: skip
    long = GenerationRequest("long", ({"role": "user", "content": " ".join(PROMPTS * 24)},),
                             "a2", SamplingParams(12))  # fmt: skip

    async def main() -> tuple[list[str], list[str], str, int, int]:
        backend = await backend_with_adapters(roomy, prefill_chunk=64, lane_tokens=lane_tokens)
        order: list[str] = []
        widest = 0
        try:
            alone = [f.text for f in await asyncio.gather(*(run(backend, r) for r in rows))]
            streams = [backend.submit(r) for r in rows]

            async def drain(name: str, stream: Any) -> str:
                nonlocal widest
                async for event in stream:
                    widest = max(widest, backend.scheduler.columns)
                    if isinstance(event, Delta):
                        order.append(name)
                    if isinstance(event, Finished):
                        return event.text
                return ""

            tasks = [asyncio.create_task(drain(f"row{i}", s)) for i, s in enumerate(streams)]
            while order.count("row3") < 2:  # all four are generating
                await asyncio.sleep(0.001)
            mark = len(order)
            long_text = await drain("long", backend.submit(long))
            between = order[mark : order.index("long")].count("row0")
            return alone, list(await asyncio.gather(*tasks)), long_text, between, widest
        finally:
            await backend.close()

    alone, together, long_text, between, widest = asyncio.run(main())
    assert together == alone  # the chunks in their passes changed no row's answer
    assert long_text == reference(roomy, long)
    assert between >= 5  # row 0 got tokens while the long prompt was being read
    assert (widest < 1000) == (lane_tokens == 1024), widest  # in a lane, rows stay narrow


def build_eos(models: dict[str, Path]) -> int:
    from transformers import AutoTokenizer

    return int(AutoTokenizer.from_pretrained(models["base"]).eos_token_id)


def test_the_chunk_budget_follows_the_measured_costs() -> None:
    from tuneloop.serve.embedded.prefill import FIRST_BUDGET, LEAST, Budget

    budget = Budget(share=0.5)
    budget._now = lambda: 100.0  # one moment: every step below is recent
    assert abs(budget.tokens() - FIRST_BUDGET) <= FIRST_BUDGET // 5  # nothing measured yet
    budget.observe_decode(0.060)
    for tokens in (40, 50, 60, 40, 50, 60):  # 20 ms to carry any chunk, then 0.5 ms a token
        budget.observe_fused(0.060 + 0.020 + 0.0005 * tokens, tokens)
    per_token = budget.per_token_s()
    assert per_token is not None and abs(per_token - 0.0005) < 1e-6
    sizes = {budget.tokens() for _ in range(3)}
    assert sizes == {96, 120, 144}  # 60 ms of tokens' own work, varied by ±20%
    budget.observe_fused(0.1, 30)
    assert max(budget.tokens() for _ in range(3)) <= 72  # at most twice the last chunk (+20%)
    budget._now = lambda: 102.0  # two seconds on: those steps read another prompt
    assert budget.per_token_s() is None
    slow = Budget(share=0.1)
    slow._now = lambda: 100.0
    slow.observe_decode(0.010)
    for tokens in (8, 9, 10):
        slow.observe_fused(1.0 + 0.1 * tokens, tokens)
    assert slow.tokens() == LEAST


def test_short_prompts_are_read_whole_and_long_ones_in_budgeted_chunks() -> None:
    from tuneloop.serve.embedded.prefill import SHORT, Prefilling, plan

    def waiting(n: int, done: int = 0) -> Prefilling:
        job: Any = type("J", (), {"request": GenerationRequest("x", (), None, SamplingParams(),
                                                               tuple(range(n)))})()  # fmt: skip
        return Prefilling(type("R", (), {"job": job})(), None, done)  # type: ignore[arg-type]

    long, short, begun = waiting(6000), waiting(SHORT), waiting(SHORT, done=10)
    chunks = plan([long, short, begun], 64)
    assert [(p is long, n) for p, n in chunks] == [(True, 64), (False, SHORT)]
    assert plan([begun], 64) == [(begun, 64)]
