"""The demo end to end: every planted problem is caught where it should be, every record counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneloop.demo.run import run_demo
from tuneloop.errors import WorkspaceError


def test_demo_catches_every_planted_problem(tmp_path: Path) -> None:
    summary = run_demo(tmp_path / "demo", records=600, seed=1, as_json=True)
    assert summary["accounting"]["balanced"]
    for kind, row in summary["planted"].items():
        on_training_side = row["records"] - row["eval_bucket"]
        assert row["caught"] == on_training_side, f"{kind}: {row['outcomes']}"


def test_demo_refuses_to_wipe_a_folder_it_did_not_create(tmp_path: Path) -> None:
    (tmp_path / "precious").mkdir()
    with pytest.raises(WorkspaceError, match="not a demo workspace"):
        run_demo(tmp_path / "precious", records=100, as_json=True)


@pytest.mark.parametrize(("steps", "items"), [(16, 16), (48, 32), (1, 1)])
def test_loop_settings_scale_training_and_the_gate(tmp_path: Path, steps: int, items: int) -> None:
    from tuneloop.demo import loop
    from tuneloop.workspace import init_workspace

    ws = loop.configure(init_workspace(tmp_path / "ws", "demo"), steps, items)
    train, evaluate = ws.config.train, ws.config.evaluate
    saves = max(1, steps // 2)
    assert (train.max_steps, train.eval_every, train.save_every) == (steps, steps, saves)
    assert evaluate.max_items_per_suite == items
    assert evaluate.fields == ["intent", "priority", "department"]
    assert evaluate.newest_suites == [ws.config.gateway.eval_suite]  # this week's traffic
    assert ws.config.curate.system_prompt == loop.SYSTEM_PROMPT
    long = steps >= loop.LONG_FROM
    assert (train.rehearsal, train.rehearsal_ratio) == (("sft", 0.1) if long else ("off", 0.2))
    assert train.rounds == ("new" if long else "all")
    canary = ws.config.serve.canary
    minimums = (loop.LONG_CANARY,) * 2 if long else (16, 12)
    assert (canary.min_requests, canary.min_feedback) == minimums
