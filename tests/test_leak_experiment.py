"""The leak experiment on a tiny model: the gate refuses the leaky model, the check drops
the leaked items."""

from __future__ import annotations

import json
from pathlib import Path

from tuneloop.datasets import DatasetStore
from tuneloop.flows.experiment import run_leak_experiment

from support.workspaces import cycle_ws


def test_leak_experiment(tmp_path: Path, tiny_base: Path) -> None:
    ws = cycle_ws(tmp_path, tiny_base, improve=False)
    result = run_leak_experiment(ws, tmp_path / "eval.jsonl", max_train=10, epochs=1.0)
    assert result["leaked_items"] == 3 and result["fresh_items"] == 3
    store = DatasetStore(ws.datasets_dir)
    assert len(store.load(result["clean_dataset"], split="train")) == 10
    manifest = store.show(result["clean_dataset"])
    curated_train = len(store.load(manifest["parent"], split="train"))
    assert manifest["drops_by_reason"] == {"experiment:beyond_sample": curated_train - 10}
    assert result["steps"]["leaky"] > result["steps"]["clean"]
    assert {r["model"] for r in result["scores"]} == {"clean", "leaky"}
    assert result["cutoff_window"] == "2026-W41"
    leaky = result["gate"]["leaky"]
    assert leaky["decision"] == "fail"
    certificate = next(c for c in leaky["checks"] if c["name"] == "contamination_certificate")
    assert not certificate["passed"] and "3 training records match" in certificate["detail"]
    clean = next(
        c for c in result["gate"]["clean"]["checks"] if c["name"] == "contamination_certificate"
    )
    assert clean["passed"], clean["detail"]
    # Four task items per model are too few for the memorization rule: it says so, and passes.
    for probe in result["memorization"].values():
        assert probe["passed"] and "not judged" in probe["detail"]
    normal = result["normal_pipeline"]
    assert normal["stored_train"] == 0 and normal["dropped"] == {"contamination:contaminated": 3}
    assert json.dumps(result)
