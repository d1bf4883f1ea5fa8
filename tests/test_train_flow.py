"""``tuneloop train`` on a workspace: dataset version → adapter, lineage, replay, resume."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tuneloop.flows.curate import curate
from tuneloop.flows.train import train
from tuneloop.workspace import Workspace

from support.data import chats, ingest
from support.workspaces import training_workspace


@pytest.fixture
def ws(tmp_path: Path, tiny_base: Path) -> Workspace:
    return training_workspace(tmp_path / "ws", tiny_base)


def test_train_writes_adapter_and_lineage(ws: Workspace, tmp_path: Path) -> None:
    ingest(ws, tmp_path, chats("a", 24), "a.jsonl")
    first = curate(ws)
    report = train(ws)
    lineage = json.loads((Path(report.run_dir) / "lineage.json").read_text())
    assert lineage["dataset_version"] == first.version and lineage["replay_version"] is None
    assert lineage["base"]["weights_sha256"] and lineage["hyperparameters"]["max_steps"] == 4
    assert set(lineage["libraries"]) >= {"torch", "transformers", "peft"}
    assert (Path(report.adapter_dir) / "adapter_model.safetensors").exists()
    assert report.result["steps"] == 4
    ingest(ws, tmp_path, chats("b", 24), "b.jsonl")
    curate(ws)
    second = train(ws)
    assert second.lineage["replay_version"] is not None
    assert second.lineage["records"]["train"] > 24  # replayed records mixed in


def test_resume_continues_the_same_run(ws: Workspace, tmp_path: Path) -> None:
    ingest(ws, tmp_path, chats("a", 24), "a.jsonl")
    curate(ws)
    straight = train(ws)
    again = train(ws, resume=True)
    assert again.run_id == straight.run_id and again.result["resumed_from"] == 4
    assert again.adapter_sha256 == straight.adapter_sha256


def test_cli_train_json(ws: Workspace, tmp_path: Path) -> None:
    ingest(ws, tmp_path, chats("a", 24), "a.jsonl")
    curate(ws)
    exe = Path(sys.executable).with_name("tuneloop")
    done = subprocess.run(
        [str(exe), "train", "--workspace", str(ws.root), "--max-steps", "2", "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(done.stdout)["result"]["steps"] == 2  # stdout: the JSON alone
    # No terminal: plain progress lines on stderr, from loading the model to the last step.
    lines = done.stderr.splitlines()
    assert any("loading the base model" in line and "done:" in line for line in lines), lines
    assert any(re.search(r"training: 0/2 steps, 0%", line) for line in lines), lines
    assert any(re.search(r"training: done: 2/2 steps, 100%.*loss \d", line) for line in lines)


def test_dry_run_estimates_from_measured_steps_and_writes_nothing(
    ws: Workspace, tmp_path: Path
) -> None:
    ingest(ws, tmp_path, chats("a", 24), "a.jsonl")
    curate(ws)
    exe = Path(sys.executable).with_name("tuneloop")
    done = subprocess.run(
        [str(exe), "train", "--workspace", str(ws.root), "--max-steps", "40", "--dry-run",
         "--json"], capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = json.loads(done.stdout)
    assert found["steps"] == 40 and found["seconds_per_step"] > 0
    expected = 40 * found["seconds_per_step"] + found["evaluations"] * found[
        "seconds_per_evaluation"]  # fmt: skip
    assert found["estimated_seconds"] == pytest.approx(expected, abs=0.051)  # rounded to 0.1
    assert found["peak_rss_bytes"] > 100 * 2**20
    assert not (ws.root / "runs").exists() and not ws.has_registry()


def test_a_round_continues_from_productions_adapter(ws: Workspace, tmp_path: Path) -> None:
    import torch
    from peft import get_peft_model_state_dict

    from tuneloop.flows.register import registry_for
    from tuneloop.model.base import load_base
    from tuneloop.train.adapter import adapter_weights
    from tuneloop.train.lora import LoraSettings, with_lora
    from tuneloop.train.warm import load_into

    ingest(ws, tmp_path, chats("a", 24), "a.jsonl")
    curate(ws)
    first = train(ws)
    assert first.lineage["init_from"]["version"] is None  # nothing in production yet
    registry_for(ws).promote(str(first.version))
    ingest(ws, tmp_path, chats("b", 24), "b.jsonl")
    curate(ws)
    second = train(ws)
    assert second.lineage["init_from"]["version"] == first.version
    assert second.run_id != first.run_id
    model, _, _ = load_base(ws.config.train.base, None)
    model = with_lora(model, LoraSettings(r=4, alpha=8))
    load_into(model, Path(first.adapter_dir))
    loaded = get_peft_model_state_dict(model)
    saved = adapter_weights(Path(first.adapter_dir))
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)


@pytest.mark.parametrize("rounds", ["all", "new"])
def test_rounds_new_trains_on_what_the_adapter_has_not_seen(
    ws: Workspace, tmp_path: Path, rounds: str
) -> None:
    """With rounds = "new", a round continuing production's adapter takes the records that
    adapter was not trained on; earlier ones come back only as replay (replay_ratio 0.5)."""
    from tuneloop.datasets import DatasetStore
    from tuneloop.errors import WorkspaceError
    from tuneloop.flows.register import registry_for

    ws = ws.configure({"train.rounds": rounds})
    ingest(ws, tmp_path, chats("a", 24), "a.jsonl")
    first_version = curate(ws).version
    first = train(ws)
    registry_for(ws).promote(str(first.version))
    ingest(ws, tmp_path, chats("b", 12), "b.jsonl")
    second_version = curate(ws).version
    second = train(ws)
    store = DatasetStore(ws.datasets_dir)
    old = {r.id for r in store.load(first_version, split="train")}
    new = [r for r in store.load(second_version, split="train") if r.id not in old]
    everything = len(store.load(second_version, split="train"))
    records = second.lineage["records"]
    assert second.lineage["rounds"] == rounds and first.lineage["records"]["round"] == len(old)
    assert records["round"] == (len(new) if rounds == "new" else everything)
    if rounds == "new":
        assert records["train"] == 2 * len(new)  # replay makes half of the mix
        registry_for(ws).promote(str(second.version))
        with pytest.raises(WorkspaceError, match="has not seen"):
            train(ws)  # production was trained on this very version: nothing is new
