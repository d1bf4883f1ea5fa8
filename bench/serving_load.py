"""Load for the serving benchmarks: clients arriving at random times, streaming, measured alike.

Every server (tuneloop, ``transformers serve``, vLLM) gets the same prompts, the same
``max_tokens``, greedy decoding and the same clock: time to first token is the first non-empty
content chunk; completion tokens are counted by re-tokenizing each answer with the model's own
tokenizer, so no server's own accounting is trusted over another's.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench import data

MAX_TOKENS = 64


def prompts(n: int = 48) -> list[str]:
    rows = json.loads((data.root() / data.ALPACA).read_text())
    return [f"{r['instruction']}\n{r['input']}".strip() for r in rows[:n]]


@dataclass
class LoadResult:
    clients: int
    requests: int = 0
    failed: int = 0
    tokens: int = 0
    seconds: float = 0.0
    ttft: list[float] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    first_start: float = float("inf")
    last_end: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def ttft_ms(self, q: float) -> float:
        return float(np.percentile(self.ttft, q) * 1000) if self.ttft else float("nan")


async def one_request(
    client: httpx.AsyncClient,
    url: str,
    model: str,
    prompt: str,
    tokenizer: Any,
    result: LoadResult,
    headers: dict[str, str],
) -> None:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stream": True,
    }
    start = time.perf_counter()
    result.first_start = min(result.first_start, start)
    parts: list[str] = []
    first: float | None = None
    try:
        async with client.stream(
            "POST", f"{url}/v1/chat/completions", json=body, headers=headers
        ) as response:
            if response.status_code != 200:
                result.failed += 1
                await response.aread()
                return
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    result.failed += 1
                    return
                result.models.append(str(chunk.get("model")))
                for choice in chunk.get("choices", []):
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece and first is None:
                        first = time.perf_counter() - start
                    parts.append(piece)
    except httpx.HTTPError:
        result.failed += 1
        return
    result.requests += 1
    result.last_end = max(result.last_end, time.perf_counter())
    result.ttft.append(first if first is not None else time.perf_counter() - start)
    result.tokens += len(tokenizer.encode("".join(parts), add_special_tokens=False))


async def run_load(
    url: str,
    model: str,
    clients: int,
    per_client: int,
    tokenizer: Any,
    seed: int = 0,
    arrive_s: float = 2.0,
    think_s: float = 0.05,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """``clients`` closed-loop users: each arrives at a random time in the first ``arrive_s``
    seconds, then sends its requests one after another, a short random pause between them.

    Throughput is measured from the first request's start to the last one's end."""
    texts = prompts()
    result = LoadResult(clients)
    rng = random.Random(seed)
    plans = [
        [
            (
                rng.uniform(0, arrive_s) if i == 0 else rng.expovariate(1 / think_s),
                texts[rng.randrange(len(texts))],
            )
            for i in range(per_client)
        ]
        for _ in range(clients)
    ]

    async def user(plan: Sequence[tuple[float, str]]) -> None:
        async with httpx.AsyncClient(timeout=600) as client:
            for wait, prompt in plan:
                await asyncio.sleep(wait)
                await one_request(client, url, model, prompt, tokenizer, result, headers or {})

    await asyncio.gather(*(user(p) for p in plans))
    result.seconds = result.last_end - result.first_start
    return result


def one_at_a_time(model: Any, tokenizer: Any, n: int) -> LoadResult:
    """The floor: plain ``generate`` on one request at a time, no server."""
    import torch

    result = LoadResult(1)
    start = time.perf_counter()
    for prompt in prompts()[:n]:
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_dict=False
        )
        t = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                input_ids=torch.tensor([ids]),
                max_new_tokens=MAX_TOKENS,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        text = tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)
        result.ttft.append(time.perf_counter() - t)  # no streaming: the whole answer
        result.tokens += len(tokenizer.encode(text, add_special_tokens=False))
        result.requests += 1
    result.seconds = time.perf_counter() - start
    return result


@contextmanager
def server(
    cmd: list[str],
    url: str,
    log: Path,
    env: dict[str, str] | None = None,
    ready: str = "/v1/models",
    timeout: float = 300,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process, wait until ``url + ready`` answers 200, stop it afterwards."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{cmd[0]} exited ({proc.returncode}); see {log}")
                try:
                    if httpx.get(url + ready, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{cmd[0]} not ready after {timeout:.0f} s; see {log}")
                time.sleep(0.5)
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
