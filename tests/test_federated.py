"""``tuneloop federated``: three sites in Flower's simulation engine (Ray) on one machine.

One simulation (two rounds, FFA) is shared by the tests below: what crossed the wire, the
example weighting, the exactness of the aggregate, the registry's per-site lineage; the gate's
refusal is exercised on the same round through the aggregator's own round handler.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tuneloop.datasets import DatasetStore
from tuneloop.errors import TuneloopError
from tuneloop.federated.factors import pairs, product_error, weighted_mean
from tuneloop.federated.privacy import UpdatePrivacy, clip_and_noise, l2_norm
from tuneloop.federated.run import FederatedReport, federated
from tuneloop.federated.strategy import RoundRecord
from tuneloop.federated.wire import SiteReport
from tuneloop.flows.curate import curate
from tuneloop.flows.evalset import add_file
from tuneloop.flows.ingest import ingest_file
from tuneloop.flows.register import registry_for
from tuneloop.workspace import Workspace, init_workspace

from support.clirun import run as cli
from support.data import chats
from support.workspaces import CYCLE, training_workspace

SITES = {"site1": ("zulu", 6), "site2": ("yankee", 12), "site3": ("xray", 18)}


def site(root: Path, base: Path, prefix: str, n: int) -> Workspace:
    ws = training_workspace(root, base)
    path = root / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in chats(prefix, n)))
    ingest_file(ws, path)
    curate(ws)
    path.unlink()  # the records now live only in the site's stores
    return ws


def aggregator(root: Path, base: Path) -> Workspace:
    ws = training_workspace(root, base, CYCLE)
    evals = [
        {"id": f"e{i}", "prompt": f"what is the fee for wire {i} abroad", "completion": "10"}
        for i in range(4)
    ]
    (root.parent / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals))
    add_file(ws, root.parent / "eval.jsonl", "task")
    return ws


class Run:
    """The shared simulation: its report, what the aggregator saw each round, the workspaces."""

    def __init__(self, tmp: Path, base: Path) -> None:
        self.sites = [site(tmp / name, base, p, n) for name, (p, n) in SITES.items()]
        self.agg = aggregator(tmp / "agg", base)
        self.rounds: list[RoundRecord] = []
        self.report: FederatedReport = federated(
            self.agg,
            [s.root for s in self.sites],
            rounds=2,
            local_steps=3,
            observe=self.rounds.append,
        )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Run:
    return Run(tmp_path_factory.mktemp("fed"), tiny_base)


def test_only_adapter_tensors_and_counts_cross(run: Run) -> None:
    assert len(run.rounds) == 2
    texts = [m["content"] for p, n in SITES.values() for r in chats(p, n) for m in r["messages"]]
    for record in run.rounds:
        for sent in record.wire:
            assert sent["tensors"] and all(".lora_B." in k for k in sent["tensors"])  # FFA: B only
            for key, meta in sent["tensors"].items():
                assert meta["shape"] == list(record.global_before[key].shape)
            assert sent["metrics"] == sorted(
                ["num-examples", "train_loss", "val_loss", "update_norm"]
            )
            assert set(sent["report"]) == set(SiteReport.__dataclass_fields__)
        dumped = json.dumps(record.wire)
        assert not any(p in dumped for p, _ in SITES.values())  # no record id
        assert not any(t in dumped for t in texts)  # no record text


def test_fedavg_weights_by_example_counts_exactly(run: Run) -> None:
    counts = {}
    for ws in run.sites:
        store = DatasetStore(ws.datasets_dir)
        counts[ws.root.name] = store.show(store.latest() or "")["counts"]["train"]
    for record in run.rounds:
        assert record.weights == [float(counts[r.site]) for r in record.reports]
        total = sum(record.weights)
        for key, before in record.global_before.items():
            by_hand = before.astype(np.float64)
            for delta, n in zip(record.deltas, record.weights, strict=True):
                by_hand = by_hand + delta.get(key, 0.0) * (n / total)
            np.testing.assert_allclose(record.aggregate[key], by_hand, rtol=1e-5, atol=1e-7)


def test_ffa_aggregate_is_the_weighted_mean_of_updates(run: Run) -> None:
    for record in run.rounds:
        locals_ = [
            {k: v + d.get(k, 0.0) for k, v in record.global_before.items()} for d in record.deltas
        ]
        assert product_error(locals_, record.weights, record.aggregate) < 1e-6
        for a_key, _ in pairs(list(record.aggregate)).values():  # A stays the shared seed init
            np.testing.assert_array_equal(
                record.aggregate[a_key], run.rounds[0].global_before[a_key]
            )


def test_plain_factor_averaging_is_not_the_mean_of_updates() -> None:
    rng = np.random.default_rng(0)
    key_a, key_b = "m.q_proj.lora_A.weight", "m.q_proj.lora_B.weight"
    sites = [{key_a: rng.normal(size=(4, 16)), key_b: rng.normal(size=(16, 4))} for _ in range(3)]
    naive = weighted_mean(sites, [1, 2, 3])
    assert product_error(sites, [1, 2, 3], naive) > 0.3
    shared = [{**s, key_a: sites[0][key_a]} for s in sites]  # FFA: one A for all
    assert product_error(shared, [1, 2, 3], weighted_mean(shared, [1, 2, 3])) < 1e-12


def test_clipping_bounds_what_leaves_a_site() -> None:
    update = {"x.lora_B.weight": np.full((8, 4), 3.0, dtype=np.float32)}
    clipped, norm = clip_and_noise(update, UpdatePrivacy(clip=1.0))
    assert norm > 1 and abs(l2_norm(clipped) - 1.0) < 1e-5
    noisy, _ = clip_and_noise(update, UpdatePrivacy(clip=1.0, noise=1.0), np.random.default_rng(0))
    assert not np.allclose(noisy["x.lora_B.weight"], clipped["x.lora_B.weight"])


def test_passing_rounds_are_registered_with_per_site_lineage(run: Run) -> None:
    assert [r["decision"] for r in run.report.rounds] == ["pass", "pass"], run.report.rounds
    assert len(run.report.registered) == 2
    registry = registry_for(run.agg)
    latest = {ws.root.name: DatasetStore(ws.datasets_dir).latest() for ws in run.sites}
    for version in run.report.registered:
        mv = registry.get(version)
        assert mv.lineage.dataset_version.startswith("federated:")
        fed = mv.lineage.hyperparameters["federated"]
        assert fed["aggregation"] == "ffa"
        assert {s["site"]: s["dataset_version"] for s in fed["sites"]} == latest
        assert all(s["train_records"] == s["examples"] > 0 for s in fed["sites"])
        assert sum(s["train_records"] + s["validation_records"] for s in fed["sites"]) == sum(
            n for _, n in SITES.values()
        )
        tags = json.dumps(mv.lineage.to_tags())
        assert not any(p in tags for p, _ in SITES.values())  # ids and counts, never records


def test_a_round_refused_by_the_gate_is_not_registered(run: Run) -> None:
    from tuneloop.federated.server import Aggregator, fresh_adapter
    from tuneloop.federated.wire import RoundPlan
    from tuneloop.model.base import load_base

    ws = run.agg.configure({"gate.thresholds": {"loss": 0.0001}})
    try:
        model, _, info = load_base(str(ws.config.train.base))
        record = replace(run.rounds[0], server_round=3)
        model, _ = fresh_adapter(model, _lora(ws), 0)
        plan = RoundPlan(
            "fed-refused",
            _settings(ws),
            "ffa",
            UpdatePrivacy(),
            info.weights_sha256,
            str(ws.index_dir),
            _index_version(ws),
        )
        before = len(registry_for(ws).list())
        agg = Aggregator(ws, plan, model, info, ws.config.train.base, 3, {})
        agg.on_round(record)
        assert agg.outcomes[0].decision == "fail" and agg.outcomes[0].version is None
        assert any("loss" in r for r in agg.outcomes[0].reasons)
        assert len(registry_for(ws).list()) == before
    finally:  # the shared aggregator, as the other tests see it
        run.agg.configure({"gate.thresholds": {}})


def _settings(ws: Workspace) -> Any:
    from tuneloop.flows.train import settings_from

    return settings_from(ws.config.train, 3).model_copy(update={"privacy": None})


def _lora(ws: Workspace) -> Any:
    return _settings(ws).lora


def _index_version(ws: Workspace) -> str:
    from tuneloop.federated.run import eval_index

    return eval_index(ws)


@pytest.mark.parametrize(
    ("sites", "kwargs", "needle"),
    [
        (["s1"], {}, "at least two sites"),
        (["s1", "s1"], {}, "already given"),
        (["s1", "agg"], {}, "already given as the aggregator"),
        (["s1", "nope"], {}, "not a tuneloop workspace"),
        (["s1", "s2"], {}, "no dataset version yet"),
        (["s1", "s2"], {"aggregation": "mean"}, "use one of ffa, naive"),
        (["s1", "s2"], {"rounds": 0}, "at least 1"),
    ],
)
def test_bad_input_is_refused_before_any_training(
    tmp_path: Path, sites: list[str], kwargs: dict[str, Any], needle: str
) -> None:
    for name in ("s1", "s2", "agg"):
        init_workspace(tmp_path / name)
    roots = [tmp_path / name for name in sites]
    with pytest.raises(TuneloopError, match=needle):
        federated(Workspace(tmp_path / "agg"), roots, **{"rounds": 1, "local_steps": 1, **kwargs})


def test_bad_input_on_the_command_line_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for name in ("s1", "agg"):
        init_workspace(tmp_path / name)
    done = cli(
        "federated", "--site", tmp_path / "s1", "--noise", "1", "-w", tmp_path / "agg", cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "--noise needs --clip" in done.stderr


def test_the_site_side_never_loads_the_eval_side() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tuneloop.federated.client\n"
        "print(sorted(m for m in sys.modules if m.startswith('tuneloop.evalside')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
