"""``tuneloop serve``: build the backend and the services from a workspace, then run uvicorn."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from pathlib import Path
from typing import Any

from tuneloop.config import ServeConfig
from tuneloop.errors import ConfigError
from tuneloop.model.base import resolve, weights_sha256
from tuneloop.model.fetch import base_folder
from tuneloop.registry import Registry
from tuneloop.serve.generation import Backend
from tuneloop.serve.services import Services, build_services
from tuneloop.serve.vllm import VLLMBackend
from tuneloop.workspace import Workspace


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(cfg: ServeConfig, host: str, keys_enabled: bool) -> str | None:
    """Refuse to listen beyond loopback without keys; say so when listening unprotected."""
    if keys_enabled:
        return None
    if not is_loopback(host):
        raise ConfigError(
            f"no API key configured, so the server will not listen on {host}: create one with "
            "`tuneloop keys create NAME` (or set $TUNELOOP_API_KEYS), or bind to 127.0.0.1"
        )
    return (
        f"no API key configured: listening on {host} only, and every local caller is "
        "an admin (`tuneloop keys create NAME` to require keys)"
    )


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now: a port in use is one line before anything loads, and
    port 0 gets a free port whose number can be printed (the server then serves on it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port "
            "(serve.port) or stop what holds it"
        ) from None
    sock.listen(2048)  # listening now: a client told the URL may connect while the model loads
    sock.set_inheritable(True)
    return sock


def base_ref(ws: Workspace) -> str:
    return base_folder(ws.config.train.base)


def embedded_backend(ws: Workspace, cfg: ServeConfig) -> tuple[Backend, str | None]:
    from tuneloop.serve.embedded import EmbeddedBackend  # noqa: PLC0415 - heavy (torch): the embedded backend only

    backend = EmbeddedBackend.load(
        base_ref(ws),
        ws.config.train.base,
        cfg.dtype,
        max_batch=cfg.max_batch,
        max_waiting=cfg.max_queue,
        prefill_share=cfg.prefill_share,
        prefill_chunk=cfg.prefill_chunk,
    )
    return backend, backend.base_info.weights_sha256 if backend.base_info else None


def vllm_backend(ws: Workspace, cfg: ServeConfig, url: str) -> tuple[Backend, str | None]:
    folder = Path(resolve(base_ref(ws)))
    tokenizer: Any = None
    if folder.is_dir():
        from transformers import AutoTokenizer  # noqa: PLC0415 - heavy (transformers)

        tokenizer = AutoTokenizer.from_pretrained(folder)
    backend = asyncio.run(
        VLLMBackend.connect(
            url, ws.config.train.base, tokenizer, max_inflight=cfg.max_queue + cfg.max_batch
        )
    )
    return backend, weights_sha256(folder) if folder.is_dir() else None


def services_for(ws: Workspace, backend: Backend, base_sha256: str | None) -> Services:
    return build_services(
        ws,
        backend,
        lambda: Registry.for_workspace(ws.root),
        base_sha256,
        watch=(ws.registry_audit_path,),
    )
