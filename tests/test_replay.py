"""The replay buffer: bounded, versioned, and each strategy keeps what it promises."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuneloop.errors import ConfigError
from tuneloop.records import Record
from tuneloop.train.replay import ReplayBuffer, replay_count


def round_records(round_no: int, n: int, source: str = "chat") -> list[Record]:
    return [
        Record(id=f"r{round_no}-{i}", shape="text", text=f"text {round_no} {i}", source=source)
        for i in range(n)
    ]


def test_reservoir_is_uniform_over_rounds(tmp_path: Path) -> None:
    shares: Counter[str] = Counter()
    for seed in range(5):
        buf = ReplayBuffer(tmp_path / f"s{seed}", capacity=200, seed=seed)
        for r in range(10):
            buf.add_round(round_records(r, 100), f"ds-{r}")
        state = buf.load()
        assert len(state.entries) == 200 and state.seen == 1000
        shares.update(e.round for e in state.entries)
    for r in range(10):
        assert shares[f"ds-{r}"] / 1000 == pytest.approx(0.1, abs=0.035)


def test_stratified_keeps_small_strata(tmp_path: Path) -> None:
    buf = ReplayBuffer(tmp_path, capacity=100, strategy="stratified")
    buf.add_round(round_records(0, 900, "email") + round_records(1, 30, "api"), "ds-0")
    kinds = Counter(e.stratum for e in buf.load().entries)
    assert kinds["api"] == 30 and kinds["email"] == 50


def test_loss_strategy_keeps_the_hardest(tmp_path: Path) -> None:
    buf = ReplayBuffer(tmp_path, capacity=3, strategy="loss")
    recs = round_records(0, 6)
    buf.add_round(recs, "ds-0", losses=[0.1, 2.0, 0.5, 3.0, 1.0, 0.2])
    assert {e.record["id"] for e in buf.load().entries} == {"r0-1", "r0-3", "r0-4"}


def test_versions_are_immutable_and_the_same_round_is_not_added_twice(tmp_path: Path) -> None:
    buf = ReplayBuffer(tmp_path, capacity=10)
    v1 = buf.add_round(round_records(0, 20), "ds-0")
    assert buf.add_round(round_records(0, 20), "ds-0") == v1
    v2 = buf.add_round(round_records(1, 20), "ds-1")
    assert v2 != v1 and buf.load(v1).rounds == ["ds-0"] and buf.load(v2).parent == v1
    assert ReplayBuffer(tmp_path, capacity=10).current() == v2


def test_sample_excludes_current_records(tmp_path: Path) -> None:
    buf = ReplayBuffer(tmp_path, capacity=50)
    buf.add_round(round_records(0, 50), "ds-0")
    picked = buf.sample(10, exclude={f"r0-{i}" for i in range(45)}, seed=0)
    assert len(picked) == 5 and all(int(r.id.split("-")[1]) >= 45 for r in picked)


@given(st.integers(0, 10_000), st.floats(0.0, 0.9))
def test_replay_count_gives_the_ratio(train: int, ratio: float) -> None:
    n = replay_count(train, ratio)
    if train:
        assert abs(n / (n + train) - ratio) <= 1 / (n + train) + 1e-9


@pytest.mark.parametrize(("capacity", "strategy"), [(0, "reservoir"), (10, "fifo")])
def test_bad_settings(tmp_path: Path, capacity: int, strategy: str) -> None:
    with pytest.raises(ConfigError):
        ReplayBuffer(tmp_path, capacity=capacity, strategy=strategy)
