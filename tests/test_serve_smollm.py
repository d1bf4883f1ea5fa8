"""End to end on SmolLM2-135M-Instruct: `tuneloop serve` as its own process, the openai client,
then `tuneloop ingest --serving-log` turning what it served into training-side records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest

from tuneloop.model.fetch import fetch_default
from tuneloop.serve.background import free_port

from support.clirun import TUNELOOP, run
from support.workspaces import make_workspace

pytestmark = pytest.mark.slow


def test_smollm2_served_by_the_cli_and_ingested(tmp_path: Path) -> None:
    fetch_default()
    port = free_port()
    ws = make_workspace(tmp_path / "ws", {"serve.port": port, "serve.feedback_window_s": 0})
    env = {k: v for k, v in os.environ.items() if k != "TUNELOOP_WORKSPACE"}
    proc = subprocess.Popen([str(TUNELOOP), "serve", "-w", str(ws.root)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.5)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        question = [{"role": "user", "content": "What is the capital of France?"}]
        answer = client.chat.completions.create(
            model="production", messages=question, max_tokens=24, temperature=0, user="alice"
        )
        assert "Paris" in (answer.choices[0].message.content or "")
        streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="production", messages=question, max_tokens=24, temperature=0, stream=True,
            user="bob") if c.choices)  # fmt: skip
        assert streamed == answer.choices[0].message.content
        fb = httpx.post(f"{url}/v1/feedback", json={"response_id": answer.id, "thumbs": "up"})
        assert fb.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after shutdown
    done = run("ingest", "--serving-log", "-w", ws.root, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["records"] == 2 and report["serving_log"]["feedback_joined"] == 1
