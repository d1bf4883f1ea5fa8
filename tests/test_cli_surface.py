"""The CLI's surface: every command takes --json, every command that opens a workspace refuses a
broken tuneloop.toml before it does anything, and --help lists the commands by stage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from tuneloop.cli import STAGES, app
from tuneloop.errors import ConfigError
from tuneloop.workspace import init_workspace

COMMAND = typer.main.get_command(app)


def commands(cmd: click.Command = COMMAND, path: tuple[str, ...] = ()) -> Iterator[
    tuple[tuple[str, ...], click.Command]
]:  # fmt: skip
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from commands(sub, (*path, name))
    else:
        yield path, cmd


def options(cmd: click.Command) -> set[str]:
    return {opt for p in cmd.params for opt in getattr(p, "opts", [])}


ALL = sorted(commands())


@pytest.mark.parametrize(("path", "cmd"), ALL, ids=[" ".join(p) for p, _ in ALL])
def test_every_command_takes_json(path: tuple[str, ...], cmd: click.Command) -> None:
    assert "--json" in options(cmd), f"`tuneloop {' '.join(path)}` has no --json"


# Commands that make a workspace rather than open one, or never read its settings.
MAKES = {("demo",), ("experiment", "leak")}
OPENS = [(p, c) for p, c in ALL if "--workspace" in options(c) and p not in MAKES]


@pytest.mark.parametrize(("path", "cmd"), OPENS, ids=[" ".join(p) for p, _ in OPENS])
def test_every_workspace_command_refuses_a_broken_toml(
    path: tuple[str, ...], cmd: click.Command, tmp_path: Path
) -> None:
    ws = init_workspace(tmp_path / "ws")
    ws.config_path.write_text(
        ws.config_path.read_text(encoding="utf-8") + "\n[train]\nmax_steps = -3\n",
        encoding="utf-8",
    )
    before = sorted(p.relative_to(ws.root) for p in ws.root.rglob("*"))
    data = tmp_path / "in.jsonl"
    data.write_text('{"prompt": "a", "completion": "b"}\n', encoding="utf-8")
    args: list[str] = []
    for param in cmd.params:
        if isinstance(param, click.Argument):
            args.append(str(data) if param.type.name == "path" else "x")
        elif param.required:
            args += [param.opts[0], "x"]
    result = CliRunner().invoke(app, [*path, *args, "--workspace", str(ws.root)])
    assert isinstance(result.exception, ConfigError), (result.exception, result.output)
    assert str(ws.config_path) in str(result.exception)
    # the duplicate [train] table or the bad value: either way, nothing was written
    assert sorted(p.relative_to(ws.root) for p in ws.root.rglob("*")) == before


def test_help_lists_the_commands_by_stage() -> None:
    out = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "120"}).output
    positions = [out.index(f"─ {title} ") for title in STAGES]
    assert positions == sorted(positions), "stages out of order"
    top = set(COMMAND.commands)  # type: ignore[attr-defined]
    assert top == {name for names in STAGES.values() for name in names}
    for title, names in STAGES.items():
        panel = out[out.index(f"─ {title} ") :].split("╰", 1)[0]
        for name in names:
            assert f"│ {name} " in panel, (title, name)
