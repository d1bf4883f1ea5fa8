"""One whole cycle on a tiny model: train → register → evaluate → gate → promote → rollback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tuneloop.flows.curate import curate
from tuneloop.flows.evalset import add_file
from tuneloop.flows.gate import gate
from tuneloop.flows.ingest import ingest_file
from tuneloop.flows.register import registry_for
from tuneloop.flows.train import train
from tuneloop.workspace import Workspace

from test_train_flow import TRAIN_TOML, chats
from tiny import build_tiny_model

CYCLE_TOML = """
[evaluate]
max_new_tokens = 4
batch_size = 4
max_items_per_suite = 4
forgetting_items = 4

[gate]
bootstrap_samples = 200
require_improvement = {improve}
"""


def cycle_ws(workspace: Workspace, tmp_path: Path, improve: bool) -> Workspace:
    base = build_tiny_model(tmp_path / "tiny")
    text = workspace.config_path.read_text().replace("eval_fraction = 0.1", "eval_fraction = 0.0")
    text = text.split("[train]")[0] + TRAIN_TOML.format(base=base)
    text += CYCLE_TOML.format(improve=str(improve).lower())
    workspace.config_path.write_text(text)
    ws = Workspace(workspace.root)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chats("a", 24)))
    evals = [{"id": f"e{i}", "prompt": f"what is the fee for wire {i} abroad", "completion": "10",
              "created_at": f"2026-10-{5 + 7 * (i // 3):02d}T12:00:00Z"}
             for i in range(6)]  # fmt: skip
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals))
    add_file(ws, tmp_path / "eval.jsonl", "task")
    ingest_file(ws, tmp_path / "in.jsonl")
    curate(ws)
    return ws


def test_gate_records_its_decision_and_promotion_moves_production(
    workspace: Workspace, tmp_path: Path
) -> None:
    ws = cycle_ws(workspace, tmp_path, improve=False)
    first = train(ws)
    out = gate(ws, str(first.version), promote=True)
    assert set(out) >= {"decision", "reasons", "metrics", "checks"}
    assert out["decision"] == "pass", out["reasons"]
    registry = registry_for(ws)
    assert registry.resolve("production").version == first.version
    assert json.loads(json.dumps(out))  # plain JSON
    second = train(ws, max_steps=2)
    assert registry.get(str(second.version)).lineage.parent_version == first.version
    registry.promote(str(second.version))
    exe = str(Path(sys.executable).with_name("tuneloop"))
    subprocess.run(
        [exe, "registry", "rollback", "-w", str(ws.root)], check=True, capture_output=True
    )
    assert registry.resolve("production").version == first.version


def test_gate_fails_without_a_significant_improvement(workspace: Workspace, tmp_path: Path) -> None:
    ws = cycle_ws(workspace, tmp_path, improve=True)
    version = train(ws).version
    out = gate(ws, str(version))
    assert out["decision"] == "fail"
    assert any("improve" in r for r in out["reasons"])
    exe = str(Path(sys.executable).with_name("tuneloop"))
    done = subprocess.run([exe, "gate", str(version), "-w", str(ws.root), "--json"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 1 and json.loads(done.stdout)["decision"] == "fail"


@pytest.mark.parametrize("ref", ["production", "99"])
def test_unknown_model_refs_are_one_line_errors(workspace: Workspace, ref: str) -> None:
    exe = str(Path(sys.executable).with_name("tuneloop"))
    done = subprocess.run([exe, "registry", "show", ref, "-w", str(workspace.root)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1


def test_evaluate_prints_means_per_suite_and_slice(workspace: Workspace, tmp_path: Path) -> None:
    from clirun import run

    ws = cycle_ws(workspace, tmp_path, improve=False)
    version = train(ws).version
    done = run("evaluate", version, "-w", ws.root, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)["summary"]
    assert set(summary["task"]["window"]) == {"2026-W41", "2026-W42"}  # items spread over both
    assert summary["task"]["all"]["items"] == 4
    assert summary["safety"]["all"]["harmful_compliance"] is not None
    text = run("evaluate", version, "-w", ws.root, cwd=tmp_path).stdout
    assert "window 2026-W41" in text and "memorization probe: no training cut-off" in text


def test_an_inconclusive_gate_ends_the_cycle_and_the_release_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tuneloop.cycle.stages import gate

    check = {"name": "no_regression", "passed": False, "outcome": "inconclusive", "detail": "d"}
    decision = {"decision": "inconclusive", "reasons": ["d"], "checks": [check], "warnings": ["w"]}
    monkeypatch.setattr(gate, "run_gate", lambda ws, v: SimpleNamespace(decision=decision))
    cycle = SimpleNamespace(report=lambda stage, kind: SimpleNamespace(version="7"))
    result = gate.run(cast(Any, None), cast(Any, cycle))
    assert result.status == "inconclusive"
    assert result.summary == "v7: the gate could not decide (no_regression); the release waits"
    assert result.decision == "inconclusive" and result.warnings == ["w"]
    assert gate.Report.model_validate_json(result.model_dump_json()) == result  # round-trips
