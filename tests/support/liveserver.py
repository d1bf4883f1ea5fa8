"""A real server on loopback for tests: uvicorn in a thread, a tiny model, registered adapters."""

from __future__ import annotations

import threading
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

from support.workspaces import make_workspace


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
    settings = {
        "train.base": str(base),
        "gateway.eval_fraction": eval_fraction,
        "serve.poll_s": 0.02,
        "serve.max_batch": max_batch,
        "serve.max_queue": max_queue,
        "serve.default_max_tokens": 8,
        "serve.max_body_bytes": 65536,
        "serve.feedback_window_s": 0,
        **{f"serve.{name}": value for name, value in serve.items()},
        "serve.canary.interval_s": interval,
        "serve.canary.failure_threshold": 2,
        "serve.canary.min_requests": min_requests,
        "serve.canary.min_feedback": min_feedback,
    }
    return make_workspace(root, settings)


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
def tiny_server(root: Path, base: Path, **settings: Any) -> Iterator[tuple[str, Services]]:
    """A ready server over ``base`` (a tiny model: ``tiny_talker``, which says varied things)
    in a workspace at ``root``; ``settings``: :func:`serve_workspace`'s."""
    import httpx

    ws = serve_workspace(root / "ws", base, **settings)
    with live_server(ws, base) as (url, services):
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200)
        yield url, services


@contextmanager
def held_worker(services: Services) -> Iterator[threading.Event]:
    """The generation worker held between two steps until the event is set (or the block ends):
    nothing leaves the waiting queue meanwhile, whatever the machine's load."""
    hold = threading.Event()
    held = services.backend.scheduler.call(hold.wait)  # type: ignore[attr-defined]
    try:
        wait_for(held.running)
        yield hold
    finally:
        hold.set()


def wait_for(predicate: Any, timeout: float = 20.0, every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")
