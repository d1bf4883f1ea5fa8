"""The serving commands: ``serve``, ``canary start | status | stop``, ``keys create``."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from tuneloop import render
from tuneloop.cli_options import JsonOpt, LogFormatOpt, WorkspaceOpt
from tuneloop.errors import ConfigError, WorkspaceError
from tuneloop.jsonl import atomic_writer
from tuneloop.logs import start_logging
from tuneloop.workspace import find_workspace

# Each command imports the code it runs inside itself (the CLI's start-up time): `tuneloop --help`
# and every command start without loading torch, MLflow, FastAPI or pyarrow.

canary_app = typer.Typer(help="Canary releases judged on live traffic.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for the server.", no_args_is_help=True)


def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on (serve.host)")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="port, 0-65535 (serve.port)")
    ] = None,
    backend: Annotated[str | None, typer.Option(help="embedded | vllm (serve.backend)")] = None,
    vllm_url: Annotated[str | None, typer.Option(help="vLLM server (serve.vllm_url)")] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
    log_format: LogFormatOpt = None,
) -> None:
    """Serve production (and any canary) at http://HOST:PORT/v1, OpenAI-compatible.

    With --json, one JSON line on stdout once the server listens (its URL, model, backend)."""
    import uvicorn

    from tuneloop.serve.app import create_app
    from tuneloop.serve.auth import KeyRing
    from tuneloop.serve.http import server_options
    from tuneloop.serve.server import (
        bind,
        check_binding,
        embedded_backend,
        services_for,
        vllm_backend,
    )

    ws = find_workspace(workspace)
    cfg = ws.config.serve
    start_logging(log_format or cfg.log_format)
    host, port = host or cfg.host, cfg.port if port is None else port
    kind = backend or cfg.backend
    if kind not in ("embedded", "vllm"):
        raise ConfigError(f"--backend {kind!r}: use embedded or vllm")
    note = check_binding(cfg, host, KeyRing.load(cfg.api_keys).enabled)
    url = vllm_url or cfg.vllm_url
    if kind == "vllm" and not url:
        raise ConfigError("the vllm backend needs --vllm-url or serve.vllm_url")
    sock = bind(host, port)  # before the model loads: a port in use is said at once
    port = int(sock.getsockname()[1])
    with render.working("loading the base model", False):
        built = vllm_backend(ws, cfg, url or "") if kind == "vllm" else embedded_backend(ws, cfg)
    app = create_app(services_for(ws, *built))
    if note:
        render.err.print(f"note: {note}", highlight=False)
    base_url = f"http://{host}:{port}/v1"
    if json:
        render.emit_json_line({"serving": base_url, "model": ws.config.train.base,
                               "backend": kind, "note": note})  # fmt: skip
    else:
        render.out.print(f"tuneloop serving {ws.config.train.base} ({kind}) at {base_url} — "
                         "model 'production' follows the registry")  # fmt: skip
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            **server_options(app))  # fmt: skip
    uvicorn.Server(config).run(sockets=[sock])


def vllm_template(
    out: Annotated[
        Path | None, typer.Option(help="where (default serve/vllm-template.jinja)")
    ] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Write the chat template vLLM needs for tool calls, and print vLLM's tool flags."""
    from transformers import AutoTokenizer

    from tuneloop.model.base import resolve
    from tuneloop.serve.server import base_ref
    from tuneloop.serve.tools import vllm_template as template_for

    ws = find_workspace(workspace)
    tokenizer = AutoTokenizer.from_pretrained(resolve(base_ref(ws)))
    original = tokenizer.chat_template or ""
    path = out or ws.vllm_template_path
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path, "w") as fh:
        fh.write(original if "tools" in original else template_for(original))
    flags = ["--chat-template", str(path), "--enable-auto-tool-choice",
             "--tool-call-parser", "hermes"]  # fmt: skip
    if json:
        render.emit_json({"template": str(path), "vllm_flags": flags})
        return
    render.out.print(" ".join(flags), highlight=False, markup=False)


@canary_app.command("start")
def canary_start(
    version: Annotated[str, typer.Argument(help="the candidate version, e.g. v3")],
    weight: Annotated[
        float, typer.Option(help="percent of users to start with", min=0.1, max=100)
    ] = 10.0,
    step: Annotated[
        float, typer.Option(help="percent added after each passing interval", min=0.1, max=100)
    ] = 10.0,
    max_weight: Annotated[
        float, typer.Option("--max-weight", help="promote after passing here", min=0.1, max=100)
    ] = 50.0,
    force: Annotated[
        str | None,
        typer.Option("--force", help="start it although the version may not serve; say why"),
    ] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Send WEIGHT% of users to VERSION; a running server judges it and promotes or rolls back."""
    from tuneloop.flows.register import registry_for
    from tuneloop.serve.canary import actions

    ws = find_workspace(workspace)
    index = ws.index_version()
    state = actions.start(
        ws.serve_dir, registry_for(ws), version, weight, step, max_weight, index, force
    )
    if json:
        render.emit_json(asdict(state))
        return
    interval = ws.config.serve.canary.interval_s
    render.out.print(
        f"canary v{state.version} vs {_name(state.baseline)} at {state.weight:g}% "
        f"of users; +{step:g}% every passing {interval:g} s up to "
        f"{state.max_weight:g}%, then promoted ({state.canary_id})"
    )


def _name(version: str) -> str:
    return version if version == "base" else f"v{version}"


@canary_app.command("status")
def canary_status(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Per-arm numbers of the canary and the judge's verdict: so far while it runs, the one it
    ended on once it has ended (one verdict, whose numbers the table shows)."""
    from tuneloop.serve.canary.controller import judge_now
    from tuneloop.serve.canary.judge import Verdict
    from tuneloop.state.canary import read_state
    from tuneloop.state.serving_log import ServingLog

    ws = find_workspace(workspace)
    state = read_state(ws.serve_dir)
    if state is None:
        raise WorkspaceError("no canary has run in this workspace; `tuneloop canary start V`")
    if not state.running and state.last_verdict is not None:
        verdict, arms, label = Verdict.from_dict(state.last_verdict), {}, "last verdict"
    else:
        log = ServingLog(ws.store("serving", "serve"))
        try:
            judgment = judge_now(state, log, ws.config.serve.canary)
        finally:
            log.close()
        verdict, label = judgment.verdict, "verdict so far"
        arms = {"production": asdict(judgment.production), "canary_arm": asdict(judgment.canary)}
    if json:
        render.emit_json({"canary": asdict(state), "verdict": verdict.to_dict(), **arms})
        return
    render.out.print(
        f"canary v{state.version} vs {_name(state.baseline)}: {state.status}, "
        f"weight {state.weight:g}% (max {state.max_weight:g}%), "
        f"{state.judgments} judgments, {state.failures} failing in a row"
    )
    if state.ended_reason and state.status != "rolled_back":  # a rollback's reason is its verdict
        render.out.print(f"  ended: {state.ended_reason}")
    render.canary_table(verdict.metrics)
    render.out.print(f"{label}: [bold]{verdict.decision}[/] — {'; '.join(verdict.reasons)}")


@canary_app.command("stop")
def canary_stop(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Stop the canary: its users go back to production."""
    from tuneloop.flows.register import registry_for
    from tuneloop.serve.canary import actions

    ws = find_workspace(workspace)
    state = actions.stop(ws.serve_dir, registry_for(ws))
    if json:
        render.emit_json({"stopped": f"v{state.version}"})
        return
    render.out.print(f"canary v{state.version} stopped; every user is on production")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="the tenant this key identifies")],
    admin: Annotated[bool, typer.Option(help="may run canaries, promote, roll back")] = False,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create an API key: its sha256 goes into tuneloop.toml, the key is shown once."""
    from tuneloop.serve.keys import add_key

    ws = find_workspace(workspace)
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise ConfigError(f"key name {name!r}: use letters, digits, - and _ (at most 64)")
    key = add_key(ws.config_path, name, ["inference", "admin"] if admin else ["inference"])
    if json:
        render.emit_json({"name": name, "key": key, "admin": admin})
        return
    render.out.print(f"API key for {name}{' (admin)' if admin else ''} — shown only now:\n{key}")
    render.out.print(f"its sha256 is in {ws.config_path}; restart the server to use it")
