"""One whole cycle on a tiny model: train → register → evaluate → gate → promote → rollback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tuneloop.flows.gate import gate
from tuneloop.flows.register import registry_for
from tuneloop.flows.train import train
from tuneloop.workspace import Workspace

from support.clirun import run
from support.workspaces import cycle_ws


def test_gate_records_its_decision_and_promotion_moves_production(
    tmp_path: Path, tiny_base: Path
) -> None:
    ws = cycle_ws(tmp_path, tiny_base, improve=False)
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


def test_gate_fails_without_a_significant_improvement(tmp_path: Path, tiny_base: Path) -> None:
    ws = cycle_ws(tmp_path, tiny_base, improve=True)
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


def test_evaluate_prints_means_per_suite_and_slice(tmp_path: Path, tiny_base: Path) -> None:
    ws = cycle_ws(tmp_path, tiny_base, improve=False)
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
