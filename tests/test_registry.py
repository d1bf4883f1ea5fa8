"""The registry over MLflow/SQLite: lineage round trip, verified downloads, alias moves with an
audit trail, lineage chains, and twenty processes registering at once."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlflow.exceptions import MlflowException
from safetensors.numpy import save_file

from tuneloop.errors import WorkspaceError
from tuneloop.registry import AdapterIntegrityError, Lineage, Registry, with_retry
from tuneloop.registry.core import ProductionMovedError, os_actor
from tuneloop.registry.location import RegistryMovedError
from tuneloop.workspace import init_workspace

from support.clirun import run

LINEAGE = Lineage(
    base_ref="tiny-base",
    base_revision="rev-1",
    base_sha256="b" * 64,
    dataset_version="ds-1",
    replay_version="rp-1",
    hyperparameters={"lr": 2e-4, "lora_r": 8, "targets": ["q_proj", "v_proj"]},
    code_version="git-abc",
)


def make_adapter(folder: Path, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    weights = np.random.default_rng(seed).standard_normal((4, 4)).astype(np.float32)
    save_file({"lora_A": weights}, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({"r": 8, "seed": seed}))
    return folder


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate an MLflow schema once; each test copies it instead of migrating again (~2 s)."""
    folder = tmp_path_factory.mktemp("template")
    Registry(f"sqlite:///{folder}/mlflow.db", artifact_root=folder / "artifacts", name="template")
    return folder / "mlflow.db"


@pytest.fixture
def registry(tmp_path: Path, template_db: Path) -> Registry:
    shutil.copy(template_db, tmp_path / "mlflow.db")
    return Registry.for_workspace(tmp_path)


def register(registry: Registry, tmp_path: Path, seed: int, **lineage: Any) -> str:
    adapter = make_adapter(tmp_path / f"adapter-{seed}", seed)
    return registry.register(adapter, dataclasses.replace(LINEAGE, **lineage)).version


def test_register_two_versions_and_read_lineage_back(registry: Registry, tmp_path: Path) -> None:
    v1 = registry.register(make_adapter(tmp_path / "a"), LINEAGE, {"eval_loss": 1.5})
    v2 = registry.register(
        make_adapter(tmp_path / "b", 1), dataclasses.replace(LINEAGE, parent_version=v1.version)
    )
    assert (v1.version, v2.version) == ("1", "2")
    got = registry.get(1)
    assert got.lineage == LINEAGE
    assert got.adapter_sha256 == v1.adapter_sha256 != v2.adapter_sha256
    assert got.run_id == v1.run_id and got.source.endswith("/adapter")
    assert [mv.version for mv in registry.list()] == ["1", "2"]
    assert registry.get("v2").lineage.parent_version == "1"
    run = registry.client.get_run(v1.run_id)
    assert run.data.params["lora_r"] == "8" and run.data.metrics["eval_loss"] == 1.5
    assert run.data.tags["tuneloop.dataset_version"] == "ds-1"


def test_gate_decision_and_eval_report_are_recorded(registry: Registry, tmp_path: Path) -> None:
    register(registry, tmp_path, 0)
    registry.set_gate_decision(1, {"passed": True, "reasons": []})
    registry.attach_eval_report(1, tmp_path / "report.json")
    lineage = registry.get(1).lineage
    assert json.loads(lineage.gate_decision or "") == {"passed": True, "reasons": []}
    assert lineage.eval_report == str((tmp_path / "report.json").resolve())


def test_pickle_files_are_refused(registry: Registry, tmp_path: Path) -> None:
    adapter = make_adapter(tmp_path / "a")
    (adapter / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(WorkspaceError, match=r"adapter_model\.bin.*never pickle"):
        registry.register(adapter, LINEAGE)


def stored_file(registry: Registry, version: str, name: str) -> Path:
    return Path(registry.get(version).source.removeprefix("file://")) / name


def test_download_verifies_every_file(registry: Registry, tmp_path: Path) -> None:
    version = register(registry, tmp_path, 0)
    out = registry.download(version, tmp_path / "ok")
    assert sorted(p.name for p in out.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    assert (out / "adapter_config.json").read_text() == json.dumps({"r": 8, "seed": 0})

    weights = stored_file(registry, version, "adapter_model.safetensors")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(AdapterIntegrityError, match=r"adapter_model\.safetensors: sha256 differs"):
        registry.download(version, tmp_path / "tampered")
    assert not (tmp_path / "tampered").exists()

    stored_file(registry, register(registry, tmp_path, 1), "adapter_config.json").unlink()
    with pytest.raises(AdapterIntegrityError, match=r"adapter_config\.json: missing"):
        registry.download("2", tmp_path / "missing")


def test_promote_rollback_and_audit(registry: Registry, tmp_path: Path) -> None:
    for seed in range(3):
        register(registry, tmp_path, seed)
    with pytest.raises(WorkspaceError, match="nothing to roll back"):
        registry.rollback()
    registry.promote(1)
    registry.promote(2)
    registry.promote(3)
    assert [registry.resolve(a).version for a in ("production", "previous")] == ["3", "2"]
    assert registry.rollback() == "2"
    assert "previous" not in registry.aliases()  # the version rolled back from is no way back
    with pytest.raises(ProductionMovedError, match="nothing to roll back"):
        registry.rollback()  # a retried rollback changes nothing
    with pytest.raises(ProductionMovedError, match="production is v2, not v3: it moved"):
        registry.rollback(to=1, expected=3)
    assert registry.rollback(to=1, expected=2) == "1"
    assert registry.rollback(to=1) == "1"  # already there: nothing moves
    moves = [(e["action"], e["alias"], e["from"], e["to"]) for e in registry.audit()]
    assert moves == [
        ("promote", "production", None, "1"),
        ("promote", "previous", None, "1"),
        ("promote", "production", "1", "2"),
        ("promote", "previous", "1", "2"),
        ("promote", "production", "2", "3"),
        ("rollback", "production", "3", "2"),
        ("rollback", "previous", "2", None),
        ("rollback", "production", "2", "1"),
    ]
    lines = (tmp_path / "registry-audit.jsonl").read_text().splitlines()
    assert len(lines) == 8
    assert all(json.loads(line)["user"] == os_actor() for line in lines)
    assert os_actor().startswith("os:") and os_actor() != "os:unknown"
    as_key = registry.acting_as("key:ops")
    as_key.promote(3)
    assert registry.audit()[-1]["user"] == "key:ops"


def test_canary_alias_and_resolve(registry: Registry, tmp_path: Path) -> None:
    register(registry, tmp_path, 0)
    register(registry, tmp_path, 1)
    registry.promote(1)
    registry.set_canary(2)
    assert registry.resolve("canary").version == "2"
    assert registry.get(2).aliases == ["canary"]
    assert registry.resolve("production").aliases == ["production"]
    registry.clear_canary()
    with pytest.raises(WorkspaceError, match=r"'canary'.*versions: 1, 2; aliases: production=1"):
        registry.resolve("canary")
    with pytest.raises(WorkspaceError, match=r"'7'.*versions: 1, 2"):
        registry.resolve("7")
    assert [(e["action"], e["to"]) for e in registry.audit()][-2:] == [
        ("set_canary", "2"),
        ("clear_canary", None),
    ]


@pytest.mark.parametrize("ref", ["²", "v" + "9" * 30, "abc", "-1", "3.5", ""])
def test_refs_that_are_no_version_are_one_line_errors(registry: Registry, ref: str) -> None:
    with pytest.raises(WorkspaceError):
        registry.resolve(ref)


def test_lineage_chain(registry: Registry, tmp_path: Path) -> None:
    register(registry, tmp_path, 0)
    register(registry, tmp_path, 1, parent_version="1")
    register(registry, tmp_path, 2)  # a fresh line, not an ancestor of 4
    register(registry, tmp_path, 3, parent_version="2")
    assert [mv.version for mv in registry.lineage(4)] == ["4", "2", "1"]
    registry.promote(4)
    assert [mv.version for mv in registry.lineage("production")] == ["4", "2", "1"]


def test_retry_backs_off_on_locked_database() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:  # MLflow wraps the driver's error: the cause chain is searched
            raise MlflowException("SQL error") from sqlite3.OperationalError("database is locked")
        return "done"

    assert with_retry(flaky, sleep=sleeps.append) == "done"
    assert len(calls) == 4 and len(sleeps) == 3 and all(0 < s <= 2.0 for s in sleeps)
    with pytest.raises(MlflowException, match="no such table"):
        with_retry(lambda: (_ for _ in ()).throw(MlflowException("no such table")))


def test_register_waits_while_another_writer_holds_the_database(
    registry: Registry, tmp_path: Path
) -> None:
    holder = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    threading.Timer(0.5, holder.execute, args=("ROLLBACK",)).start()
    started = time.monotonic()
    assert register(registry, tmp_path, 0) == "1"
    assert time.monotonic() - started >= 0.4
    holder.close()


def _register_in_process(root: str, seed: int, barrier: Any, results: Any) -> None:
    """Child process: open the registry, wait for all siblings, then register one version."""
    registry = Registry.for_workspace(Path(root))
    adapter = make_adapter(Path(root) / f"adapter-{seed}", seed)
    barrier.wait(timeout=120)
    lineage = dataclasses.replace(LINEAGE, dataset_version=f"ds-{seed}")
    results.put((seed, registry.register(adapter, lineage).version))


@pytest.mark.slow
def test_twenty_processes_register_concurrently(tmp_path: Path, template_db: Path) -> None:
    shutil.copy(template_db, tmp_path / "mlflow.db")
    registry = Registry.for_workspace(tmp_path)
    # forkserver starts children from a fresh server process, as spawn does (no inherited
    # connections or locks), but imports MLflow there once instead of twenty times: ~10 s
    # instead of ~40 s on two cores. "spawn" passes too.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tuneloop.registry", "mlflow.store.tracking.sqlalchemy_store"])
    barrier, results = ctx.Barrier(20), ctx.Queue()
    procs = [
        ctx.Process(target=_register_in_process, args=(str(tmp_path), i, barrier, results))
        for i in range(20)
    ]
    started = time.monotonic()
    for proc in procs:
        proc.start()
    got = dict(results.get(timeout=180) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    print(f"20 concurrent registrations: {time.monotonic() - started:.1f}s")
    assert [proc.exitcode for proc in procs] == [0] * 20
    assert sorted(got.values(), key=int) == [str(v) for v in range(1, 21)]
    versions = registry.list()
    assert [mv.version for mv in versions] == [str(v) for v in range(1, 21)]
    for seed, version in got.items():
        assert registry.get(version).lineage.dataset_version == f"ds-{seed}"
    registry.download(got[7], tmp_path / "dl")


def test_a_copied_workspace_never_reads_the_originals_adapters(tmp_path: Path) -> None:
    original = init_workspace(tmp_path / "original").root
    version = register(Registry.for_workspace(original), tmp_path, 0)
    copy = Path(shutil.copytree(original, tmp_path / "copy"))
    with pytest.raises(RegistryMovedError, match=str(original / "artifacts")):
        Registry.for_workspace(copy)
    listed = run("registry", "list", cwd=copy)
    assert listed.returncode == 2 and str(original / "artifacts") in listed.stderr
    assert run("registry", "relocate", cwd=copy).returncode == 0
    shutil.rmtree(original)  # the copy now stands alone
    registry = Registry.for_workspace(copy)
    fetched = registry.download(version, tmp_path / "fetched")
    assert (fetched / "adapter_model.safetensors").is_file()
    assert str(copy) in registry.get(version).source
