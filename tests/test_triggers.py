"""Triggers: schedule, volume, drift (false and true alarm rates), live quality, --if-due."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tuneloop.config import TriggerConfig
from tuneloop.cycle.drift import HashedWords, detect_drift, mmd_permutation_test, prompt_of
from tuneloop.cycle.quality import production_quality
from tuneloop.cycle.triggers import check_schedule, check_volume, history
from tuneloop.demo import templates as tpl
from tuneloop.demo.generate import clean_traffic
from tuneloop.records import record_from_obj
from tuneloop.state.serving_log import FeedbackRow, ResponseRow, ServingLog
from tuneloop.workspace import Workspace

from support.clirun import TUNELOOP, run
from support.data import chats
from support.workspaces import loop_ws

START = datetime(2026, 10, 1, tzinfo=UTC)
NEW_TOPIC = ("mortgage_rate", "travel_notice", "direct_deposit")
KNOWN = tuple(i.name for i in tpl.INTENTS if i.name not in NEW_TOPIC)


def prompts(seed: int, n: int, intents: tuple[str, ...], prefix: str) -> list[str]:
    rows = clean_traffic(seed, n, START, intents=intents, prefix=prefix)
    return [prompt_of(record_from_obj(r)) for r in rows]


def test_drift_false_and_true_alarm_rates_over_20_seeds() -> None:
    """Unchanged traffic fires ≤ 5% of the time; 30% of a new topic fires ≥ 95%."""
    embedder, n, false_alarms, found = HashedWords(), 200, 0, 0
    for seed in range(20):
        reference = prompts(seed, n, KNOWN, "a")
        same = prompts(1000 + seed, n, KNOWN, "b")
        shifted = prompts(2000 + seed, n - 60, KNOWN, "c")
        shifted += prompts(3000 + seed, 60, NEW_TOPIC, "d")
        false_alarms += detect_drift(reference, same, embedder=embedder, seed=seed).drifted
        found += detect_drift(reference, shifted, embedder=embedder, seed=seed).drifted
    assert false_alarms <= 1, false_alarms
    assert found >= 19, found


def test_mmd_permutation_p_values() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    _, p_same = mmd_permutation_test(a, b, permutations=200)
    mmd2, p_apart = mmd_permutation_test(a, b + 3.0, permutations=200)
    assert p_same > 0.05 and mmd2 > 0 and p_apart == pytest.approx(1 / 201)


def test_drift_with_too_few_prompts_is_not_judged() -> None:
    result = detect_drift(["a question"] * 60, ["another"] * 10, embedder=HashedWords())
    assert not result.judged and not result.drifted and "not judged" in result.detail


HOUR = 3600.0
MONDAY_3AM = datetime(2026, 11, 30, 3, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("schedule", "last_start", "now", "fired"),
    [
        ("", None, MONDAY_3AM, False),  # off
        ("0 3 * * 1", None, MONDAY_3AM + HOUR, True),  # never ran
        ("0 3 * * 1", MONDAY_3AM - 24 * HOUR, MONDAY_3AM + HOUR, True),  # Monday passed since
        ("0 3 * * 1", MONDAY_3AM + 60, MONDAY_3AM + 2 * HOUR, False),  # ran after it
        ("0 * * * *", MONDAY_3AM + 60, MONDAY_3AM + 2 * HOUR, True),  # hourly: 04:00 passed
    ],
)
def test_schedule(schedule: str, last_start: float | None, now: float, fired: bool) -> None:
    check = check_schedule(TriggerConfig(schedule=schedule), last_start, now)
    assert check.fired is fired, check.detail


def test_a_bad_cron_expression_is_a_config_error() -> None:
    from tuneloop.errors import ConfigError

    with pytest.raises(ConfigError, match="schedule"):
        check_schedule(TriggerConfig(schedule="every monday"), None, MONDAY_3AM)


@pytest.mark.parametrize(
    ("minimum", "counts", "fired"),
    [(500, (300, 150, 49), False), (500, (300, 150, 50), True), (0, (10_000, 0, 0), False)],
)
def test_volume(minimum: int, counts: tuple[int, int, int], fired: bool) -> None:
    assert check_volume(TriggerConfig(min_new_examples=minimum), *counts).fired is fired


def fill_log(ws: Workspace, now: float, before_down: float, recent_down: float) -> None:
    """200 production answers a week ago and 100 in the last hour, each with a thumb."""
    log, rng, rows = ServingLog(ws.serving_log_path), np.random.default_rng(0), []
    for i in range(300):
        recent = i >= 200
        when = now - (HOUR if recent else 7 * 24 * HOUR) + i
        messages = [{"role": "user", "content": "hi"}]
        rows.append(ResponseRow(f"r{i}", "local", messages, "production", "base",
                                answer="hello", created_unix=when))  # fmt: skip
        down = rng.random() < (recent_down if recent else before_down)
        rows.append(FeedbackRow(f"f{i}", f"r{i}", "local", thumbs="down" if down else "up"))
    log.append(rows)
    log.close()


@pytest.mark.parametrize(("recent_down", "fired"), [(0.10, False), (0.40, True)])
def test_live_quality_against_productions_own_record(
    workspace: Workspace, recent_down: float, fired: bool
) -> None:
    now = time.time()
    fill_log(workspace, now, 0.10, recent_down)
    check = production_quality(workspace, TriggerConfig(quality_window_s=2 * HOUR), now)
    assert check.fired is fired, check.detail
    assert "thumbs-down" in check.detail and check.numbers["production"] == "base"


def test_if_due_logs_every_check_and_runs_a_cycle_only_when_one_fires(
    tmp_path: Path, tiny_base: Path
) -> None:
    ws = loop_ws(tmp_path / "ws", tiny_base, chats("a", 30))
    ws.configure({"cycle.triggers.min_new_examples": 20})
    due = run("cycle", "--if-due", "-w", ws.root, "--json", cwd=tmp_path)
    assert due.returncode == 0, due.stderr
    out = json.loads(due.stdout)
    assert out["cycle"]["end"]["outcome"] == "promoted"
    assert out["cycle"]["trigger"]["kind"] == "volume"
    quiet = run("cycle", "--if-due", "-w", ws.root, cwd=tmp_path)
    assert quiet.returncode == 0 and "not due" in quiet.stdout
    logged = history(Workspace(ws.root))
    assert [e["due"] for e in logged] == [True, False]
    names = {"schedule", "volume", "drift", "quality", "erasure"}
    assert all({c["name"] for c in e["checks"]} == names for e in logged)


def test_watch_checks_the_triggers_until_terminated(workspace: Workspace, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "TUNELOOP_WORKSPACE"}
    command = [str(TUNELOOP), "watch", "--interval", "0.2", "-w", str(workspace.root)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while len(history(workspace)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "watching" in out
    assert len(history(workspace)) >= 2 and not any(e["due"] for e in history(workspace))
