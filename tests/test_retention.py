"""Retention: served texts and ingest rejects older than the settings say are gone; what is
newer, and what the canary judge counts, stays."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tuneloop.flows import retention
from tuneloop.state.serving_log import FeedbackRow, ResponseRow, ServingLog
from tuneloop.workspace import Workspace

from support.clirun import run

DAY = 86_400.0
OLD_SECRET, NEW_SECRET = "OKAPI-5512 old passphrase", "NARWHAL-7720 new passphrase"


def with_retention(ws: Workspace, serving_log_days: int, rejects_days: int) -> Workspace:
    return ws.configure(
        {"security.serving_log_days": serving_log_days, "security.rejects_days": rejects_days}
    )


def served(ws: Workspace, now: float) -> None:
    log = ServingLog(ws.serving_log_path)
    log.append([
        ResponseRow("old", "local", [{"role": "user", "content": f"is {OLD_SECRET} right?"}],
                    "production", "1", answer="yes", user_id="u1", created_unix=now - 40 * DAY),
        FeedbackRow("fb-old", "old", "local", thumbs="down", correction=f"no: {OLD_SECRET}"),
        ResponseRow("new", "local", [{"role": "user", "content": f"is {NEW_SECRET} right?"}],
                    "production", "1", answer="yes", user_id="u2", created_unix=now - 2 * DAY),
    ])  # fmt: skip
    log.close()


def holding(root: Path, text: str) -> list[str]:
    done = subprocess.run(["grep", "-rlaF", text, str(root)], capture_output=True, text=True)
    return done.stdout.split()


def test_old_served_texts_and_rejects_go_and_the_rest_stays(workspace: Workspace) -> None:
    ws, now = with_retention(workspace, serving_log_days=30, rejects_days=7), time.time()
    served(ws, now)
    ws.rejects_dir.mkdir(parents=True, exist_ok=True)
    old_rejects, new_rejects = (
        ws.rejects_dir / "ingest-old.jsonl",
        ws.rejects_dir / "ingest-new.jsonl",
    )
    for path, age in ((old_rejects, 8), (new_rejects, 1)):
        path.write_text('{"reason": "unreadable"}\n')
        os.utime(path, (now - age * DAY, now - age * DAY))
    report = retention.apply(ws, now)
    assert report.serving_log == {"responses": 1, "feedback": 1}
    assert report.rejects_files == ["train/rejects/ingest-old.jsonl"]
    assert not old_rejects.exists() and new_rejects.exists()
    assert holding(ws.root, OLD_SECRET) == []  # the file is rewritten: no free page keeps it
    assert holding(ws.root, NEW_SECRET) != []
    log = ServingLog(ws.serving_log_path)
    try:
        old, new = log.response("old"), log.response("new")
        assert old is not None and old["erased_at"] and old["status"] == "ok"  # still counted
        assert new is not None and new["erased_at"] is None and NEW_SECRET in new["messages_json"]
    finally:
        log.close()
    assert retention.apply(ws, now).removed is False  # nothing left to expire


def test_off_by_default_and_by_hand_from_the_cli(workspace: Workspace, tmp_path: Path) -> None:
    served(workspace, time.time())
    assert not retention.apply(workspace).removed
    assert holding(workspace.root, OLD_SECRET) != []
    ws = with_retention(workspace, serving_log_days=30, rejects_days=0)
    done = run("retention", "-w", ws.root, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1 served response(s) older than 30 days cleared" in done.stdout
    assert holding(ws.root, OLD_SECRET) == []
