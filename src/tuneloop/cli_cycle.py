"""The loop's commands: ``cycle`` (run or resume one round) and ``cycle status``."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tuneloop import render
from tuneloop.cli_options import JsonOpt, LogFormatOpt, WorkspaceOpt
from tuneloop.errors import TuneloopError
from tuneloop.logs import start_logging
from tuneloop.workspace import find_workspace

# Each command imports the code it runs inside itself (the CLI's start-up time): `tuneloop --help`
# and every command start without loading torch, MLflow, FastAPI or pyarrow.

cycle_app = typer.Typer(
    help="One round of the loop: collect → ingest → curate → train → gate → release.",
    invoke_without_command=True,
)


@cycle_app.callback()
def cycle(
    ctx: typer.Context,
    if_due: Annotated[
        bool, typer.Option("--if-due", help="only when a trigger fires (for cron and timers)")
    ] = False,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Run a cycle (or resume the interrupted one); `cycle status` shows where cycles stand."""
    if ctx.invoked_subcommand is not None:
        return
    from tuneloop.cycle.run import run_cycle
    from tuneloop.cycle.triggers import run_if_due
    from tuneloop.state.cycle import CycleBusyError

    ws = find_workspace(workspace)
    say = (lambda _: None) if json else render.out.print
    if not if_due:
        _print_end(run_cycle(ws, say=say), json)
        return
    try:
        evaluation, status = run_if_due(ws, say)
    except CycleBusyError as exc:  # cron fired while a long cycle runs: not an error
        render.out.print(f"not starting: {exc}")
        return
    if json:
        render.emit_json({"triggers": evaluation.to_dict(), "cycle": status})
    elif status is None:
        render.out.print("not due: no trigger fired")
    else:
        _print_end(status, False)


def _print_end(status: dict[str, Any], json: bool) -> None:
    if json:
        render.emit_json(status)
        return
    end = status["end"] or {}
    render.out.print(f"[bold]{status['cycle']}[/]: {end.get('outcome')} — {end.get('summary')}")


def watch(
    interval: Annotated[
        float | None, typer.Option(help="seconds between checks (cycle.triggers.interval_s)")
    ] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
    log_format: LogFormatOpt = None,
) -> None:
    """Check the triggers every INTERVAL seconds and run a cycle whenever one fires.

    With --json, one JSON line per check on stdout (the triggers and any cycle's status)."""
    from tuneloop.cycle.triggers import run_if_due
    from tuneloop.state.cycle import CycleBusyError

    ws = find_workspace(workspace)
    start_logging(log_format or ws.config.serve.log_format)
    every = interval or ws.config.cycle.triggers.interval_s
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    say = render.err.print if json else render.out.print
    say(f"watching {ws.root}: triggers checked every {every:g} s (Ctrl-C stops)")
    while not stop.is_set():
        line: dict[str, Any] = {"checked_at": render.now()}
        say(f"[dim]{line['checked_at']}[/] checking triggers")
        try:
            triggers, status = run_if_due(ws, say)
            line |= {"triggers": triggers.to_dict(), "cycle": status}
            if status is not None and not json:
                _print_end(status, False)
        except CycleBusyError as exc:
            line["busy"] = str(exc)
            say(f"not starting: {exc}")
        except TuneloopError as exc:  # a bad input file must not end the watch; say it, go on
            line["error"] = str(exc)
            render.err.print(f"cycle failed: {exc}", markup=False)
        if json:
            render.emit_json_line(line)
        stop.wait(every)


@cycle_app.command("status")
def cycle_status(
    last: Annotated[int | None, typer.Option(help="only the last N cycles", min=1)] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Where each cycle stands: every stage's state and seconds, and the outcome."""
    from tuneloop.cycle.run import statuses

    found = statuses(find_workspace(workspace), last)
    if json:
        render.emit_json(found)
        return
    if not found:
        render.out.print("no cycle has run in this workspace yet; `tuneloop cycle` runs one")
        return
    for status in found:
        _print_status(status)


def _print_status(status: dict[str, Any]) -> None:
    end = status["end"]
    state = f"{end['outcome']}: {end['summary']}" if end else "unfinished (rerun to resume)"
    if end and end.get("canary_now"):
        state += f" — canary now {end['canary_now']}"
    trigger = (status.get("trigger") or {}).get("reason") or "by hand"
    table = Table(title=f"{status['cycle']} — started {status['started_at']} ({trigger}) — {state}",
                  title_justify="left")  # fmt: skip
    for col in ("stage", "status", "seconds", "what happened"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for s in status["stages"]:
        seconds = f"{s['seconds']:.1f}" if "seconds" in s else ""
        table.add_row(s["stage"], s["status"], seconds, s.get("summary", ""))
    render.out.print(table)


def forget(
    user: Annotated[str | None, typer.Option(help="the user, as the gateway names them")] = None,
    conversation: Annotated[str | None, typer.Option(help="one conversation")] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Erase a user's (or a conversation's) data everywhere; taint the models trained on it."""
    from tuneloop.flows.forget import forget as run

    with render.working("erasing", json):
        receipt = run(find_workspace(workspace), user, conversation)
    if json:
        render.emit_json(receipt)
        return
    removed = receipt["removed"]
    found = receipt["found"]
    render.out.print(
        f"erased {found['training_records']} training records and {found['eval_items']} eval "
        f"items ({removed.get('serving_log', {}).get('responses', 0)} serving-log responses); "
        f"{len(removed['datasets'])} dataset versions and {len(removed['replay_buffer'])} replay "
        f"versions rewritten, {sum(removed['jsonl_files'].values())} JSONL lines removed"
    )
    tainted = ", ".join(f"v{v}" for v in receipt["tainted_models"]) or "none"
    render.out.print(f"tainted model versions (trained on this data): {tainted}")
    if receipt["production_tainted"]:
        render.out.print(f"production is tainted: the next cycle will {receipt['on_tainted']}")
    check = receipt["check"]
    verdict = "nothing found" if check["clean"] else f"STILL FOUND in {check['files']}"
    searched = check["texts_searched"]
    render.out.print(f"searched the workspace for {searched} erased texts: {verdict}")
    render.out.print(f"receipt: erasures/{receipt['request_id']}.json ({receipt['seconds']:.1f} s)")


def report(
    out: Annotated[Path | None, typer.Option(help="HTML file (default report.html)")] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Write the loop's report: one self-contained HTML page (no network needed to view it)."""
    from tuneloop.report.page import write_report

    with render.working("writing the report", json):
        path = write_report(find_workspace(workspace), out)
    if json:
        render.emit_json({"report": str(path)})
    else:
        render.out.print(f"report: {path}")


def retention(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Clear served texts and delete ingest rejects older than the retention settings say."""
    from tuneloop.flows.retention import apply

    report = apply(find_workspace(workspace))
    if json:
        render.emit_json(report.to_dict())
        return
    render.out.print(report.summary())
