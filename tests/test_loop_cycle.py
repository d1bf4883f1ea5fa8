"""``tuneloop cycle``: every stage on a tiny model, clean stops, and kill -9 at every stage."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tuneloop.cycle.run import run_cycle, statuses
from tuneloop.datasets import DatasetStore
from tuneloop.flows.register import registry_for
from tuneloop.workspace import Workspace

from support.clirun import run
from support.data import chats, write_jsonl
from support.workspaces import loop_ws


@pytest.fixture(scope="module")
def base(tiny_base: Path) -> Path:
    return tiny_base


def stage_states(status: dict[str, Any]) -> dict[str, str]:
    return {s["stage"]: s["status"] for s in status["stages"]}


def test_a_cycle_runs_every_stage_then_stops_when_nothing_is_new(
    tmp_path: Path, base: Path
) -> None:
    ws = loop_ws(tmp_path / "ws", base, chats("a", 30))
    said: list[str] = []
    first = run_cycle(ws, say=said.append)
    assert first["end"]["outcome"] == "promoted", first
    assert set(stage_states(first).values()) == {"done"}
    assert all(s["seconds"] >= 0 for s in first["stages"])
    assert any(line.startswith("train: v1") for line in said)
    assert registry_for(ws).resolve("production").version == "1"
    assert not list((ws.root / "inbox").glob("*.jsonl"))  # taken into the cycle's folder
    second = run_cycle(ws)
    assert second["cycle"] == "cycle-0002" and second["end"]["outcome"] == "stopped"
    assert second["end"]["summary"].startswith("no new data")
    assert stage_states(second) == {"collect": "stopped", "ingest": "pending",
                                    "curate": "pending", "train": "pending",
                                    "gate": "pending", "release": "pending"}  # fmt: skip
    assert [s["cycle"] for s in statuses(ws)] == ["cycle-0001", "cycle-0002"]
    done = run("cycle", "status", "-w", ws.root, cwd=tmp_path)
    assert done.returncode == 0 and "cycle-0002" in done.stdout and "no new data" in done.stdout


def test_a_file_dropped_twice_is_ingested_once(tmp_path: Path, base: Path) -> None:
    rows = chats("a", 30)
    ws = loop_ws(tmp_path / "ws", base, rows)
    run_cycle(ws)
    write_jsonl(ws.root / "inbox" / "again.jsonl", rows)  # the same bytes under another name
    again = run_cycle(ws)
    ingest = next(s for s in again["stages"] if s["stage"] == "ingest")
    assert ingest["summary"].startswith("0 records")
    assert again["end"]["outcome"] == "stopped"  # curate: nothing new to train on


def test_a_dataset_with_no_training_records_stops_the_cycle(tmp_path: Path, base: Path) -> None:
    junk = [{"id": f"j{i}", "user_id": f"u{i}", "text": "!!!! ???? ####"} for i in range(6)]
    ws = loop_ws(tmp_path / "ws", base, junk)
    status = run_cycle(ws)
    assert status["end"]["outcome"] == "stopped"
    assert stage_states(status)["curate"] == "stopped"
    assert "no training records" in status["end"]["summary"]
    done = run("train", "-w", ws.root, cwd=tmp_path)  # the same dataset, trained by hand
    assert done.returncode == 2 and "no training records" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_second_cycle_process_is_refused_while_one_runs(tmp_path: Path, base: Path) -> None:
    from tuneloop.state.cycle import cycle_lock

    ws = loop_ws(tmp_path / "ws", base)
    with cycle_lock(ws):
        done = run("cycle", "-w", ws.root, cwd=tmp_path)
    assert done.returncode == 2 and "already running" in done.stderr


def final_state(ws: Workspace) -> dict[str, Any]:
    """Everything a rerun must reproduce: stores, datasets, models, aliases, rejects, outcome."""
    with sqlite3.connect(ws.train_store_path) as db:
        train_ids = sorted(r[0] for r in db.execute("SELECT id FROM records"))
    with sqlite3.connect(ws.eval_store_path) as db:
        eval_ids = sorted(r[0] for r in db.execute("SELECT item_id FROM items"))
    rejects = sorted(
        line for p in ws.rejects_dir.glob("*.jsonl") for line in p.read_text().splitlines()
    )
    registry = registry_for(ws)
    status = statuses(ws)
    ingest = next(s for s in status[-1]["stages"] if s["stage"] == "ingest")
    store = DatasetStore(ws.datasets_dir)
    # dataset ids name the eval store's head, whose rows carry their time: compare contents
    datasets = {v: sorted((r.id, r.meta.get("split")) for r in store.load(v))
                for v in store.versions()}  # fmt: skip
    return {
        "train_ids": train_ids,
        "eval_ids": eval_ids,
        "rejects": [json.loads(r)["id"] for r in rejects],
        "datasets": sorted(datasets.values()),
        "models": [(v.version, datasets[v.lineage.dataset_version]) for v in registry.list()],
        "aliases": registry.aliases(),
        "cycles": [(s["cycle"], (s["end"] or {}).get("outcome")) for s in status],
        "ingest": ingest.get("summary"),
    }


FAULTS = [
    "collect:before_marker",
    "ingest:after_eval_append",
    "ingest:before_marker",
    "curate:before_marker",
    "train:after_checkpoint",
    "train:before_marker",
    "gate:before_marker",
    "release:before_marker",
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, base: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("reference")
    ws = loop_ws(root / "ws", base, chats("a", 30))
    done = run("cycle", "-w", ws.root, "--json", cwd=root)
    assert done.returncode == 0, done.stderr
    return final_state(ws)


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
def test_kill_9_at_any_stage_then_rerun_reaches_the_same_state(
    tmp_path: Path, base: Path, reference: dict[str, Any], fault: str
) -> None:
    ws = loop_ws(tmp_path / "ws", base, chats("a", 30))
    killed = run("cycle", "-w", ws.root, cwd=tmp_path, env={"TUNELOOP_FAULT": fault})
    assert killed.returncode == -9, (fault, killed.stdout, killed.stderr)
    again = run("cycle", "-w", ws.root, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "resuming cycle-0001" in again.stdout
    assert final_state(ws) == reference
