"""A workspace made by release 0.1.0 still opens: settings, datasets, eval store, registry, cycles.

``tests/data/previous-0.1.0.tar.gz`` was made by 0.1.0 (``tuneloop init --no-encryption``, an
eval set, then one ``tuneloop cycle``: ingest, curate, train, gate, promote, with a tiny base
model that is not kept). When settings move or stored formats change, this is the test that says
whether users' workspaces survive the upgrade.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tuneloop.contamination.persist import load_index
from tuneloop.cycle.stages import STAGES
from tuneloop.datasets import DatasetStore
from tuneloop.flows.register import registry_for
from tuneloop.state.cycle import STAGES as CYCLE_STAGES
from tuneloop.state.cycle import list_cycles
from tuneloop.workspace import Workspace

ARCHIVE = Path(__file__).parent / "data" / "previous-0.1.0.tar.gz"
EXE = str(Path(sys.executable).with_name("tuneloop"))


def cli(ws: Path, *args: str) -> str:
    done = subprocess.run([EXE, *args, "-w", str(ws)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def previous(tmp_path: Path) -> Path:
    with tarfile.open(ARCHIVE) as tar:
        tar.extractall(tmp_path, filter="data")
    root = tmp_path / "ws"
    cli(root, "registry", "relocate")  # MLflow keeps absolute paths: the copy moved
    return root


def test_settings_of_the_previous_release_load(previous: Path) -> None:
    ws = Workspace(previous)
    assert ws.config.name == "previous"
    assert ws.config.train.max_steps == 4 and ws.config.gate.require_improvement is False
    changed = ws.configure({"train.max_steps": 5})
    assert changed.config.train.max_steps == 5 and changed.config.train.lora_r == 4


def test_datasets_and_registry_of_the_previous_release_open(previous: Path, tmp_path: Path) -> None:
    ws = Workspace(previous)
    versions = json.loads(cli(previous, "datasets", "list", "--json"))
    assert len(versions) == 1
    records = DatasetStore(ws.datasets_dir).load(versions[0]["version"])
    assert len(records) > 0 and all(r.messages for r in records)
    registry = registry_for(ws)
    production = registry.resolve("production")
    assert production.version == "1"
    assert production.lineage.dataset_version == versions[0]["version"]
    adapter = registry.download(production.version, tmp_path / "adapter")
    assert (adapter / "adapter_model.safetensors").is_file()  # verified against its manifest


def test_cycles_and_eval_store_of_the_previous_release_read(previous: Path) -> None:
    status = json.loads(cli(previous, "cycle", "status", "--json"))
    found = status if isinstance(status, list) else [status]
    assert [c["end"]["outcome"] for c in found] == ["promoted"]
    assert "6 rows, hash chain verified" in cli(previous, "evalset", "verify")
    verified = json.loads(cli(previous, "evalset", "verify", "--json"))
    assert verified["ok"] is True


def test_the_contamination_index_of_the_previous_release_is_kept(previous: Path) -> None:
    """Settings that moved or were added must not make every upgraded workspace rebuild its
    index: the stored index's settings equal those the workspace's file gives now."""
    ws = Workspace(previous)
    index = load_index(ws.index_dir)
    assert index.settings == ws.config.contamination.index_settings()
    assert len(index) == 6


def test_stage_reports_of_the_previous_release_read_as_their_types(previous: Path) -> None:
    """A cycle interrupted before an upgrade resumes: each later stage reads the earlier
    stages' stored reports as their typed models."""
    [cycle] = list_cycles(Workspace(previous))
    reports = [cycle.report(stage.NAME, stage.Report) for stage in STAGES]
    assert [type(r).__module__.rsplit(".", 1)[-1] for r in reports] == list(CYCLE_STAGES)
    assert all(r.status == "done" for r in reports)
    assert reports[-1].outcome == "promoted" and reports[3].version == reports[-1].version
