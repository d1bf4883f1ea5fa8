"""A real server on loopback for tests: uvicorn in a thread, a tiny model, registered adapters."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tuneloop.model.base import weights_sha256
from tuneloop.registry import Lineage, ModelVersion
from tuneloop.serve.app import create_app
from tuneloop.serve.background import serve_in_thread
from tuneloop.serve.embedded import EmbeddedBackend
from tuneloop.serve.generation import Backend
from tuneloop.serve.server import services_for
from tuneloop.serve.services import Services
from tuneloop.workspace import Workspace

SERVE_TOML = """
[serve]
poll_s = 0.02
max_batch = {max_batch}
max_queue = {max_queue}
default_max_tokens = 8
max_body_bytes = 65536
feedback_window_s = 0
{extra}
[serve.canary]
interval_s = {interval}
failure_threshold = 2
min_requests = {min_requests}
min_feedback = {min_feedback}
"""


def serve_workspace(
    root: Path,
    base: Path,
    max_batch: int = 4,
    max_queue: int = 16,
    interval: float = 0.5,
    min_requests: int = 20,
    min_feedback: int = 10,
    eval_fraction: float = 0.0,
    **serve: Any,
) -> Workspace:
    """A workspace whose base model is ``base``, with fast serving and canary settings;
    ``serve``: more ``[serve]`` settings."""
    from tuneloop.workspace import init_workspace

    ws = init_workspace(root)
    text = ws.config_path.read_text(encoding="utf-8")
    text = text.replace('base = "smollm2-135m-instruct"', f'base = "{base}"')
    text = text.replace("eval_fraction = 0.1", f"eval_fraction = {eval_fraction}")
    text = text.split("[serve]")[0] + SERVE_TOML.format(
        max_batch=max_batch,
        max_queue=max_queue,
        interval=interval,
        min_requests=min_requests,
        min_feedback=min_feedback,
        extra="".join(f"{k} = {json.dumps(v)}\n" for k, v in serve.items()),
    )
    ws.config_path.write_text(text, encoding="utf-8")
    return Workspace(ws.root)


def tiny_adapter(base: Path, dest: Path, seed: int, r: int = 4, scale: float = 1.0) -> Path:
    """A LoRA adapter with random (non-zero) weights: it changes the base model's answers.

    ``scale`` multiplies lora_B: on SmolLM2, 0.05 answers like the base, 10 answers garbage.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    torch.manual_seed(seed)
    config = LoraConfig(
        r=r,
        lora_alpha=4 * r,
        target_modules=["q_proj", "v_proj"],
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    peft = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.mul_(scale)
    peft.save_pretrained(dest)
    return dest


def register_adapter(
    ws: Workspace, adapter: Path, base_sha256: str, base: str, gated: bool = True
) -> ModelVersion:
    """Register ``adapter``; ``gated``: with a passing gate decision on the current eval index,
    as ``tuneloop gate`` leaves one, so that the version may be released."""
    from tuneloop.flows.register import registry_for

    lineage = Lineage(
        base_ref=base,
        base_revision="",
        base_sha256=base_sha256,
        dataset_version="ds-test",
        replay_version="",
        hyperparameters={},
        code_version="test",
    )
    registry = registry_for(ws)
    version = registry.register(adapter, lineage)
    if gated:
        index = ws.index_version() or ""
        decision = {"decision": "pass", "reasons": ["passed"], "eval_index_version": index}
        registry.set_gate_decision(version.version, decision)
    return registry.get(version.version)


@contextmanager
def live_server(
    ws: Workspace, base: Path, backend: Backend | None = None, **kwargs: Any
) -> Iterator[tuple[str, Services]]:
    """Serve ``ws`` on a free loopback port (the embedded backend unless one is given)."""
    cfg = ws.config.serve
    if backend is None:
        backend = EmbeddedBackend.load(
            str(base), ws.config.train.base, max_batch=cfg.max_batch, max_waiting=cfg.max_queue
        )
    services = services_for(ws, backend, weights_sha256(base))
    with serve_in_thread(create_app(services), **kwargs) as url:
        yield url, services


@contextmanager
def tiny_server(root: Path, context: int = 256, **settings: Any) -> Iterator[tuple[str, Services]]:
    """A ready server over the tiny Llama of ``tiny.py`` (varied tokens: ``scale=20``)."""
    import httpx

    from tiny import build_tiny_model

    base = build_tiny_model(root / "tiny", scale=20.0, context=context)
    ws = serve_workspace(root / "ws", base, **settings)
    with live_server(ws, base) as (url, services):
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200)
        yield url, services


def wait_for(predicate: Any, timeout: float = 20.0, every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")
