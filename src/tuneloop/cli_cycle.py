"""The loop's commands: ``cycle`` (run or resume one round) and ``cycle status``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tuneloop import render
from tuneloop.cli_options import JsonOpt, WorkspaceOpt
from tuneloop.workspace import find_workspace

cycle_app = typer.Typer(
    help="One round of the loop: collect → ingest → curate → train → gate → release.",
    invoke_without_command=True,
)


@cycle_app.callback()
def cycle(
    ctx: typer.Context,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Run a cycle (or resume the interrupted one); `cycle status` shows where cycles stand."""
    if ctx.invoked_subcommand is not None:
        return
    from tuneloop.cycle import run_cycle

    ws = find_workspace(workspace)
    status = run_cycle(ws, say=(lambda _: None) if json else render.out.print)
    if json:
        render.emit_json(status)
        return
    end = status["end"] or {}
    render.out.print(f"[bold]{status['cycle']}[/]: {end.get('outcome')} — {end.get('summary')}")


@cycle_app.command("status")
def cycle_status(
    last: Annotated[int | None, typer.Option(help="only the last N cycles", min=1)] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Where each cycle stands: every stage's state and seconds, and the outcome."""
    from tuneloop.cycle import statuses

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
    trigger = (status.get("trigger") or {}).get("reason") or "by hand"
    table = Table(title=f"{status['cycle']} — started {status['started_at']} ({trigger}) — {state}",
                  title_justify="left")  # fmt: skip
    for col in ("stage", "status", "seconds", "what happened"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for s in status["stages"]:
        seconds = f"{s['seconds']:.1f}" if "seconds" in s else ""
        table.add_row(s["stage"], s["status"], seconds, s.get("summary", ""))
    render.out.print(table)
