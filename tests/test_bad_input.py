"""Bad input through the real `tuneloop` executable: exit code 2, one line on stderr naming the
file (and line), and nothing left behind in the output folder."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support.clirun import run

GOOD = json.dumps(
    {"id": "g1", "messages": [{"role": "user", "content": "what is the capital of france"},
                              {"role": "assistant", "content": "paris is the capital of france"}]}
).encode()  # fmt: skip

# (case, file content, line the error must name or None)
BAD_FILES: list[tuple[str, bytes, int | None]] = [
    ("malformed-json", GOOD + b'\n{"text": "unterminated\n', 2),
    ("missing-text", GOOD + b'\n{"id": "x", "body": "no text field here"}\n', 2),
    ("non-utf8", GOOD + b'\n{"text": "caf\xe9 au lait"}\n', 2),
    ("10mb-record", GOOD + b'\n{"text": "' + b"a " * 5_000_000 + b'"}\n', 2),
    ("empty-file", b"", None),
    ("blank-lines-only", b"\n   \n\n", None),
    ("json-array", GOOD + b'\n["not", "an", "object"]\n', 2),
]


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def error_line(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), res.stderr
    return lines[0]


# Each command: (bad file, good file, output folder) -> CLI arguments.
Command = Callable[[Path, Path, Path], list[Any]]


def dedup(bad: Path, good: Path, out: Path) -> list[Any]:
    return ["dedup", bad, "--out", out / "kept.jsonl", "--dups", out / "dups.jsonl"]


def decon_bad_in(bad: Path, good: Path, out: Path) -> list[Any]:
    files = ["--out", out / "clean.jsonl", "--report", out / "report.jsonl"]
    return ["decontaminate", bad, "--against", good, *files]


def decon_bad_eval(bad: Path, good: Path, out: Path) -> list[Any]:
    files = ["--out", out / "clean.jsonl", "--report", out / "report.jsonl"]
    return ["decontaminate", good, "--against", bad, *files]


def ingest(bad: Path, good: Path, out: Path) -> list[Any]:
    return ["ingest", bad, "--workspace", out]  # the output folder is the workspace


COMMANDS: dict[str, Command] = {
    "dedup": dedup,
    "decontaminate-in": decon_bad_in,
    "decontaminate-eval": decon_bad_eval,
    "ingest": ingest,
}


def cases() -> list[Any]:
    out = []
    for cmd in COMMANDS:
        for name, content, line_no in BAD_FILES:
            out.append(pytest.param(cmd, content, line_no, id=f"{cmd}-{name}"))
    return out


@pytest.mark.parametrize(("cmd", "content", "line_no"), cases())
def test_bad_input(tmp_path: Path, cmd: str, content: bytes, line_no: int | None) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    if cmd == "ingest":
        assert run("init", out, cwd=tmp_path).returncode == 0
    else:
        out.mkdir()
    bad, good = inputs / "bad-input.jsonl", inputs / "good.jsonl"
    bad.write_bytes(content)
    good.write_bytes(GOOD + b"\n")
    before = listing(out)
    message = error_line(run(*COMMANDS[cmd](bad, good, out), cwd=tmp_path))
    assert bad.name in message
    if line_no is not None:
        assert f"{bad.name}:{line_no}" in message
    assert listing(out) == before
    assert listing(inputs) == ["bad-input.jsonl", "good.jsonl"]


def test_ingest_without_workspace(tmp_path: Path) -> None:
    (tmp_path / "good.jsonl").write_bytes(GOOD + b"\n")
    message = error_line(run("ingest", "good.jsonl", cwd=tmp_path))
    assert "tuneloop init" in message
    assert listing(tmp_path) == ["good.jsonl"]


BAD_TOML = "[gateway]\neval_fraction = 0.9\nbogus_key = 1\n"
CONFIG_COMMANDS = {
    "ingest": ["ingest", "good.jsonl", "--workspace", "ws"],
    "init": ["init", "ws"],
    "curate": ["curate", "--workspace", "ws"],
}


def bad_config_run(tmp_path: Path, cmd: str) -> tuple[str, list[str]]:
    assert run("init", "ws", cwd=tmp_path).returncode == 0
    (tmp_path / "ws" / "tuneloop.toml").write_text(BAD_TOML, encoding="utf-8")
    (tmp_path / "good.jsonl").write_bytes(GOOD + b"\n")
    before = listing(tmp_path)
    return error_line(run(*CONFIG_COMMANDS[cmd], cwd=tmp_path)), before


@pytest.mark.parametrize("cmd", CONFIG_COMMANDS)
def test_invalid_config_names_every_bad_key(tmp_path: Path, cmd: str) -> None:
    message, _ = bad_config_run(tmp_path, cmd)
    assert "tuneloop.toml" in message
    assert "gateway.eval_fraction" in message and "gateway.bogus_key" in message


@pytest.mark.parametrize(
    "cmd",
    [
        "init",
        "ingest",
        "curate",
    ],
)  # fmt: skip
def test_invalid_config_leaves_workspace_untouched(tmp_path: Path, cmd: str) -> None:
    _, before = bad_config_run(tmp_path, cmd)
    assert listing(tmp_path) == before


def test_curate_refuses_an_empty_store_and_writes_no_dataset(tmp_path: Path) -> None:
    assert run("init", "ws", cwd=tmp_path).returncode == 0
    done = run("curate", "--workspace", "ws", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "training store is empty" in error_line(done) and "tuneloop ingest" in error_line(done)
    listed = run("datasets", "list", "--workspace", "ws", "--json", cwd=tmp_path)
    assert listed.returncode == 0 and '"ds-' not in listed.stdout
