"""The gate's memorization rule: a gain over the incumbent that is larger on pre-cut-off items."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuneloop.evalside.probe import memorization_probe
from tuneloop.evalside.report import EvalReport, ItemScore, SuiteResult
from tuneloop.gate import GatePolicy, decide
from tuneloop.gate.stats import bootstrap_gap

INDEX = "idx-1"
CUTOFF = "2026-W45"


def task(n_old: int, n_fresh: int, old_shift: dict[str, float], fresh_shift: dict[str, float]
         ) -> SuiteResult:  # fmt: skip
    """Items from W44 (old) then W46 (fresh), shifted per metric from a seeded baseline."""
    base = np.random.default_rng(3).uniform(0.2, 0.6, n_old + n_fresh)
    items = []
    for k, b in enumerate(base):
        old = k < n_old
        shift = old_shift if old else fresh_shift
        wobble = 0.03 if k % 2 else -0.03
        metrics = {"token_f1": float(b + wobble + shift.get("token_f1", 0.0)),
                   "loss": float(3 - 2 * b + shift.get("loss", 0.0))}  # fmt: skip
        window = "2026-W44" if old else "2026-W46"
        items.append(ItemScore(f"q{k}", metrics, {"window": window}))
    return SuiteResult("qa", "task", items)


def reports(
    old_shift: dict[str, float],
    fresh_shift: dict[str, float],
    n_old: int = 40,
    n_fresh: int = 40,
    cutoff: str | None = CUTOFF,
) -> tuple[EvalReport, EvalReport]:
    inc = EvalReport("prod", {"qa": task(n_old, n_fresh, {}, {})}, INDEX)
    suite = task(n_old, n_fresh, old_shift, fresh_shift)
    probe = {"qa": memorization_probe(suite, cutoff)} if cutoff else {"skipped": "no cut-off"}
    return EvalReport("cand", {"qa": suite}, INDEX, memorization=probe), inc


def memorization_check(cand: EvalReport, inc: EvalReport) -> dict[str, object]:
    out = decide(cand, inc, GatePolicy(), {"index_version": INDEX}, INDEX).to_dict()
    return next(c for c in out["checks"] if c["name"] == "memorization")


LEARNED = {"token_f1": 0.1, "loss": -0.3}
CASES = [
    # (id, old-item shift, fresh-item shift, counts, passed, phrase)
    ("same gain on old and fresh items", LEARNED, LEARNED, (40, 40), True,
     "no widening gain on pre-cut-off items"),
    ("F1 gain only on old items", {"token_f1": 0.2}, {}, (40, 40), False,
     "likely memorized eval items: token_f1 on 'qa' (cut-off 2026-W45)"),
    ("loss falls only on old items", {"token_f1": 0.05, "loss": -0.6}, {"token_f1": 0.05},
     (40, 40), False, "loss on 'qa'"),
    ("widening below the bound", {"token_f1": 0.13}, {"token_f1": 0.1}, (40, 40), True,
     "widening +0.0300"),
    ("fresh gain larger: not memorization", {}, {"token_f1": 0.2}, (40, 40), True,
     "no widening gain"),
    ("too few fresh items to judge", {"token_f1": 0.3}, {}, (40, 5), True,
     "memorization not judged (token_f1 on 'qa' (cut-off 2026-W45): 40 old / 5 fresh items"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "fresh", "counts", "passed", "phrase"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])  # fmt: skip
def test_memorization_table(
    old: dict[str, float],
    fresh: dict[str, float],
    counts: tuple[int, int],
    passed: bool,
    phrase: str,
) -> None:
    check = memorization_check(*reports(old, fresh, *counts))
    assert check["passed"] is passed, check["detail"]
    assert phrase in str(check["detail"]), check["detail"]


def test_no_cutoff_is_not_judged_and_the_numbers_are_in_the_decision() -> None:
    check = memorization_check(*reports({"token_f1": 0.3}, {}, cutoff=None))
    assert check["passed"] and "no training cut-off" in str(check["detail"])
    cand, inc = reports({"token_f1": 0.2}, {})
    out = decide(cand, inc, GatePolicy(), {"index_version": INDEX}, INDEX).to_dict()
    w = out["memorization"]["qa"]["token_f1"]
    assert (w["old_items"], w["fresh_items"], w["flagged"]) == (40, 40, True)
    assert w["widening"] == pytest.approx(0.2) and w["low"] > 0.05
    assert out["decision"] == "fail"


@given(st.floats(-0.5, 0.5), st.floats(-1.0, 1.0))
def test_a_uniform_shift_never_flags(f1: float, loss: float) -> None:
    shift = {"token_f1": f1, "loss": loss}
    assert memorization_check(*reports(shift, shift))["passed"]


@given(st.lists(st.floats(-10, 10), min_size=1, max_size=40),
       st.lists(st.floats(-10, 10), min_size=1, max_size=40), st.floats(-5, 5))  # fmt: skip
def test_bootstrap_gap_moves_with_a_shift_of_the_first_group(
    a: list[float], b: list[float], c: float
) -> None:
    r0 = bootstrap_gap(a, b, samples=200)
    r1 = bootstrap_gap([x + c for x in a], b, samples=200)
    assert r0.low <= r0.delta_mean + 1e-9 and r0.delta_mean - 1e-9 <= r0.high
    for before, after in ((r0.delta_mean, r1.delta_mean), (r0.low, r1.low), (r0.high, r1.high)):
        assert math.isclose(after, before + c, abs_tol=1e-7)
    assert math.isnan(bootstrap_gap([], b).delta_mean)
