"""Fairness under load: a 6,000-token prompt arriving among four streams; Retry-After's truth;
what constrained decoding costs per token.

Runs ``tuneloop serve`` (SmolLM2-135M-Instruct, float32) as its own process; the streams and
the long prompt come from this one, and every time is a token's arrival at the client.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from statistics import median
from typing import Any

import httpx

from tuneloop.model.fetch import fetch_default

from bench.serve_bench import OUT, TUNELOOP, workspace
from bench.serving_load import prompts, server

LONG_TOKENS = 6000
STREAMS = 4


def long_prompt(tokenizer: Any, n: int = LONG_TOKENS) -> str:
    """Alpaca instructions joined until the chat prompt holds ``n`` tokens."""
    texts, out = prompts(400), []
    for text in texts * 20:
        out.append(text)
        joined = "\n".join(out)
        message = [{"role": "user", "content": joined}]
        ids = tokenizer.apply_chat_template(message, add_generation_prompt=True, return_dict=False)
        if len(ids) >= n:
            return joined
    raise RuntimeError("not enough Alpaca text for the long prompt")


async def _stream(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], times: list[float] | None = None
) -> list[float]:
    """The arrival time of every content chunk (into ``times``, kept if the stream is cut)."""
    times = [] if times is None else times
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            empty = '"content": ""' in line  # the opening chunk, with the role
            if line.startswith("data: {") and '"content": "' in line and not empty:
                times.append(time.perf_counter())
    return times


async def _ttft(client: httpx.AsyncClient, url: str, text: str) -> float:
    body = {"messages": [{"role": "user", "content": text}], "max_tokens": 2, "stream": True,
            "temperature": 0}  # fmt: skip
    start = time.perf_counter()
    times = await _stream(client, url, body)
    return (times[0] if times else time.perf_counter()) - start


async def _among_streams(url: str, text: str, eos: int) -> dict[str, float]:
    body = {"messages": [{"role": "user", "content": "Tell me a long story about a dragon."}],
            "max_tokens": 1500, "temperature": 0, "stream": True,
            "logit_bias": {str(eos): -100}}  # fmt: skip
    async with httpx.AsyncClient(timeout=900) as client:
        times: list[list[float]] = [[] for _ in range(STREAMS)]
        streams = [asyncio.create_task(_stream(client, url, body, t)) for t in times]
        await asyncio.sleep(8.0)  # the streams settle into their normal pace
        arrive = time.perf_counter()
        ttft = await _ttft(client, url, text)
        first = arrive + ttft
        await asyncio.sleep(1.0)  # the streams' pace after it
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    normal, during = [], []
    for t in times:
        gaps = [(b, b - a) for a, b in itertools.pairwise(t)]
        normal += [g for end, g in gaps if end < arrive - 1.0 and end > arrive - 6.0]
        during += [g for end, g in gaps if arrive < end <= first + 0.5]
    during.sort()
    nan = float("nan")
    return {"ttft_s": ttft, "normal_gap_s": median(normal), "normal_max_s": max(normal),
            "max_gap_s": during[-1] if during else nan,
            "p90_gap_s": during[int(0.9 * (len(during) - 1))] if during else nan}  # fmt: skip


def long_prompt_rows() -> list[dict[str, Any]]:
    from transformers import AutoTokenizer

    base = fetch_default()
    tok = AutoTokenizer.from_pretrained(base)
    text = long_prompt(tok)
    rows = []
    variants: tuple[tuple[str, dict[str, Any]], ...] = (
        ("chunked, fused into the decode steps (serve.prefill_share 0.5)", {}),
        (
            "whole prompt in one step (serve.prefill_chunk = 100000)",
            {"serve.prefill_chunk": 100000},
        ),
    )
    for i, (label, setting) in enumerate(variants):
        port = 8360 + i
        root = workspace(f"fair-{i}", base, port, setting)
        url = f"http://127.0.0.1:{port}"
        with server([TUNELOOP, "serve", "-w", str(root)], url, OUT / f"fair-{i}.log",
                    ready="/readyz"):  # fmt: skip
            lone = asyncio.run(_lone(url, text))
            row = asyncio.run(_among_streams(url, text, int(tok.eos_token_id)))
        rows.append({"variant": label, "lone_ttft_s": lone, **row})
    return rows


async def _lone(url: str, text: str) -> float:
    """A lone prefill, warm: the first one of a long prompt also pays for its buffers' pages."""
    async with httpx.AsyncClient(timeout=900) as client:
        await _ttft(client, url, "hi")
        return min([await _ttft(client, url, text) for _ in range(2)])


def retry_after_row() -> dict[str, Any]:
    """A burst over a full queue: what the 429s said to wait, and how long the queue took."""
    base = fetch_default()
    root = workspace("fair-retry", base, 8365, {"serve.max_queue": 8})
    url = "http://127.0.0.1:8365"
    with server([TUNELOOP, "serve", "-w", str(root)], url, OUT / "fair-retry.log",
                ready="/readyz"):  # fmt: skip
        return asyncio.run(_burst(url))


async def _burst(url: str) -> dict[str, Any]:
    texts = prompts(48)
    async with httpx.AsyncClient(timeout=900) as client:

        async def ask(i: int) -> httpx.Response:
            body = {"messages": [{"role": "user", "content": texts[i % len(texts)]}],
                    "max_tokens": 64, "temperature": 0}  # fmt: skip
            return await client.post(f"{url}/v1/chat/completions", json=body)

        sent = [asyncio.create_task(ask(i)) for i in range(16)]  # fills the batch and queue
        await asyncio.sleep(6.0)  # some finish: the server has measured its drain rate
        for i in range(16, 200):  # top the queue up until it refuses
            task = asyncio.create_task(ask(i))
            await asyncio.sleep(0.05)
            if task.done() and task.result().status_code == 429:
                refused, start = task.result(), time.perf_counter()
                break
            sent.append(task)
        said = int(refused.headers["retry-after"])
        drained = await _drained(client, url, start)
        await asyncio.gather(*sent)
    return {"retry_after_s": said, "drained_s": drained}


async def _drained(client: httpx.AsyncClient, url: str, start: float) -> float:
    while True:
        text = (await client.get(f"{url}/metrics")).text
        waiting = next(float(line.split()[-1]) for line in text.splitlines()
                       if line.startswith("tuneloop_queue_waiting "))  # fmt: skip
        if waiting == 0:
            return time.perf_counter() - start
        await asyncio.sleep(0.2)


def constrained_row() -> dict[str, float]:
    """llguidance on SmolLM2's 49,152-token vocabulary: compiling a schema, masking a step."""
    from transformers import AutoTokenizer

    from tuneloop.serve.embedded.constrain import Grammars
    from tuneloop.serve.generation import GenerationRequest, SamplingParams

    tok = AutoTokenizer.from_pretrained(fetch_default())
    grammars = Grammars(tok, len(tok))
    schema = json.loads(Path(__file__).with_name("ticket_schema.json").read_text())
    request = GenerationRequest("b", (), None, SamplingParams(64), json_schema=schema)
    grammars.tokenizer  # noqa: B018 - built once per server, not per request
    start = time.perf_counter()
    grammar = grammars.compile(request)
    compiled = time.perf_counter() - start
    assert grammar is not None
    answer = '{"intent": "card_lost", "priority": "high", "department": "cards", "summary": "x"}'
    ids = tok.encode(answer, add_special_tokens=False)
    matcher, masks = grammars.matcher(grammar), []
    for token in ids:
        t = time.perf_counter()
        matcher.allowed()
        matcher.consume(token)
        masks.append(time.perf_counter() - t)
    return {"compile_ms": compiled * 1000, "mask_ms_p50": median(masks) * 1000,
            "mask_ms_max": max(masks) * 1000}  # fmt: skip
