"""docs/bring-your-own-data.md, run as written: every `$ tuneloop` line in order, with the
documented settings, on a small sample and a tiny model; the endpoint answers the openai client.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import openai
import pytest
import tomlkit

from tuneloop.workspace import Workspace

from support.clirun import TUNELOOP, run

DOC = Path(__file__).resolve().parents[1] / "docs" / "bring-your-own-data.md"


def commands() -> list[list[str]]:
    """Each ``$ tuneloop`` line of the walkthrough, as the arguments after ``tuneloop``."""
    lines = DOC.read_text().splitlines()
    return [line.split()[2:] for line in lines if line.startswith("$ tuneloop")]


def settings_block() -> dict[str, Any]:
    """The walkthrough's ``toml`` block: the settings it tells a first run to set."""
    block = re.search(r"```toml\n(.*?)```", DOC.read_text(), re.S)
    assert block, "the walkthrough lost its settings block"
    return tomlkit.parse(block.group(1)).unwrap()


def sample(folder: Path) -> None:
    """Files shaped as the walkthrough describes: chat logs in both shapes and one bad line,
    prompt/completion pairs, and a CSV of questions."""
    folder.mkdir()
    topics = ["card", "transfer", "loan", "account", "statement", "branch"]
    lines = []
    for i in range(36):
        q, a = (
            f"Question {i} about my {topics[i % 6]}?",
            f"Answer {i}: see the {topics[i % 6]} page.",
        )
        turns: dict[str, Any] = (
            {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            if i % 2
            else {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
        )  # both shapes the walkthrough names
        lines.append(json.dumps({"id": f"c{i}", "user_id": f"u{i % 9}", **turns}))
    lines.insert(5, '{"id": "broken", "messages": [')
    (folder / "chats.jsonl").write_text("\n".join(lines) + "\n")
    tickets = [
        {
            "prompt": f"Ticket {i}: my {topics[i % 6]} app shows error {i}",
            "completion": f"Restart the app; if error {i} stays, call us.",
        }
        for i in range(16)
    ]
    (folder / "tickets.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tickets))
    with (folder / "questions.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["question", "answer", "topic"])
        for i in range(8):
            writer.writerow([f"How long does step {i} of a {topics[i % 6]} request take?",
                             f"Step {i} takes {i + 1} days.", topics[i % 6]])  # fmt: skip


TEST_SIZE = {  # what makes the documented settings fit a test: two steps of short rows
    "train": {"max_steps": 2, "micro_batch": 2, "block_size": 128, "max_len": 128,
              "eval_every": 2, "save_every": 2},
    "evaluate": {"max_items_per_suite": 4, "forgetting_items": 4, "max_new_tokens": 4},
    "gateway": {"eval_fraction": 0.0},
}  # fmt: skip


def configure(root: Path, tiny_base: Path) -> None:
    """The documented settings, then the tiny model and the test's sizes."""
    settings = {f"{table}.{name}": value for tables in (settings_block(), TEST_SIZE)
                for table, values in tables.items() for name, value in values.items()}  # fmt: skip
    Workspace(root).configure({**settings, "train.base": str(tiny_base)})


@pytest.mark.slow
def test_the_walkthrough_runs_as_written(tmp_path: Path, tiny_base: Path) -> None:
    sample(tmp_path / "data")
    env = {"TUNELOOP_WORKSPACE": str(tmp_path / "support")}
    steps = commands()
    assert [s[0] for s in steps] == ["init", "evalset", "ingest", "ingest", "curate", "train",
                                     "train", "gate", "serve"]  # fmt: skip
    for args in steps[:-1]:
        done = run(*args, "--json", cwd=tmp_path, env=env)
        if args[0] == "gate":  # passed, refused or inconclusive: all are answers
            assert done.returncode in (0, 1, 3), done.stderr
            assert json.loads(done.stdout)["decision"] in ("pass", "fail", "inconclusive")
            continue
        assert done.returncode == 0, (args, done.stderr)
        out = json.loads(done.stdout)
        if args[0] == "init":
            assert out["encryption"] is True
            configure(tmp_path / "support", tiny_base)
        if args[:2] == ["ingest", "data/chats.jsonl"]:
            assert out["records"] == 36 and out["dropped"].get("input:bad_line") == 1
    serve = [a if a != "8000" else "0" for a in steps[-1]]
    proc = subprocess.Popen([str(TUNELOOP), *serve, "--json"], cwd=tmp_path, text=True,
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stdout is not None
        url = json.loads(proc.stdout.readline())["serving"]
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        answer = client.chat.completions.create(
            model="production",
            messages=[{"role": "user", "content": "How do I close it?"}],
            max_tokens=4,
        )
        assert answer.choices[0].message.content is not None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
