"""The gate: one table of scenarios built from small synthetic reports, and bootstrap properties."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tuneloop.evalside.report import EvalReport, ItemScore, SuiteResult
from tuneloop.gate import GatePolicy, decide, paired_bootstrap

INDEX = "idx-7"
N_TASK = 200


@dataclass
class Scenario:
    """How the candidate differs from the incumbent; the defaults are a clear improvement."""

    task_shift: dict[str, float] = field(
        default_factory=lambda: {"token_f1": 0.1, "rouge_l": 0.08, "loss": -0.1}
    )
    noise: float = 0.05  # +noise / -noise on alternate items: the mean shift is unchanged
    forgetting_shift: float = 0.0
    harmful: int = 1  # candidate's non-refusals among 100 "refuse" items (incumbent: 1)
    over_refused: int = 2  # candidate's refusals among 100 "comply" items (incumbent: 2)
    candidate_index: str = INDEX
    certificate: dict[str, Any] | None = field(default_factory=lambda: {"index_version": INDEX})
    reverify: Callable[[], int] | None = None
    policy: GatePolicy = field(default_factory=GatePolicy)


def task_suite(shift: dict[str, float], noise: float, n: int = N_TASK) -> SuiteResult:
    base = np.random.default_rng(1).uniform(0.3, 0.7, n)
    items = []
    for i, b in enumerate(base):
        wobble = noise if i % 2 == 0 else -noise
        metrics = {m: float(b + shift.get(m, 0.0) + wobble) for m in ("token_f1", "rouge_l")}
        metrics["loss"] = float(3 - 2 * b + shift.get("loss", 0.0))
        items.append(ItemScore(f"qa-{i}", metrics))
    return SuiteResult("qa", "task", items)


def forgetting_suite(shift: float) -> SuiteResult:
    base = np.random.default_rng(2).uniform(0.2, 0.9, 100)
    items = [ItemScore(f"gen-{i}", {"token_f1": float(b + shift)}) for i, b in enumerate(base)]
    return SuiteResult("general", "forgetting", items)


def safety_suite(harmful: int, over_refused: int) -> SuiteResult:
    refuse = [ItemScore(f"h-{i}", {}, expected="refuse", refused=i >= harmful) for i in range(100)]
    comply = [
        ItemScore(f"b-{i}", {}, expected="comply", refused=i < over_refused) for i in range(100)
    ]
    return SuiteResult("safety", "safety", refuse + comply)


def report(model: str, index: str, *suites: SuiteResult) -> EvalReport:
    return EvalReport(model=model, suites={s.name: s for s in suites}, eval_index_version=index)


def run(s: Scenario) -> dict[str, Any]:
    incumbent = report("prod-v3", INDEX, task_suite({}, 0.0), forgetting_suite(0.0),
                       safety_suite(1, 2))  # fmt: skip
    task = task_suite(s.task_shift, s.noise)
    safety = safety_suite(s.harmful, s.over_refused)
    candidate = report(
        "cand-v4", s.candidate_index, task, forgetting_suite(s.forgetting_shift), safety
    )
    decision = decide(candidate, incumbent, s.policy, s.certificate, INDEX, s.reverify)
    out = decision.to_dict()
    json.dumps(out, allow_nan=False)  # the decision is plain JSON
    return out


CASES = [
    # (id, scenario, decision, failing check, phrase in a reason)
    ("clear improvement", Scenario(), "pass", None, "token_f1 on 'qa' improved"),
    ("stale certificate, no reverify", Scenario(certificate={"index_version": "idx-6"}),
     "fail", "contamination_certificate", "re-verify the training data"),
    ("stale certificate, reverify finds none",
     Scenario(certificate={"index_version": "idx-6"}, reverify=lambda: 0),
     "pass", None, "re-verified against the current index"),
    ("stale certificate, reverify finds 3",
     Scenario(certificate={"index_version": "idx-6"}, reverify=lambda: 3),
     "fail", "contamination_certificate", "3 training records match the current eval set"),
    ("missing certificate", Scenario(certificate=None),
     "fail", "contamination_certificate", "no contamination certificate"),
    ("threshold miss", Scenario(policy=GatePolicy(thresholds={"token_f1": 0.9})),
     "fail", "thresholds", "token_f1 on task suite 'qa'"),
    ("loss above its maximum", Scenario(policy=GatePolicy(thresholds={"loss": 1.0})),
     "fail", "thresholds", "maximum 1.0000"),
    ("regression beyond tolerance", Scenario(task_shift={"token_f1": 0.1, "rouge_l": -0.05}),
     "fail", "no_regression", "rouge_l fell by 0.0500"),
    ("loss rises beyond tolerance", Scenario(task_shift={"token_f1": 0.1, "loss": 0.05}),
     "fail", "no_regression", "loss rose by 0.0500"),
    ("drop exactly at the tolerance, no noise",
     Scenario(task_shift={"token_f1": 0.1, "rouge_l": -0.01}, noise=0.0),
     "pass", None, "by more than 0.01"),
    ("drop whose interval straddles the tolerance",
     Scenario(task_shift={"token_f1": 0.1, "rouge_l": -0.005}),
     "inconclusive", "no_regression", "rouge_l fell by 0.0050"),
    ("drop estimated on the tolerance", Scenario(task_shift={"token_f1": 0.1, "rouge_l": -0.01}),
     "inconclusive", "no_regression", "no practical sample size would decide it"),
    ("loss rise within its own tolerance",
     Scenario(task_shift={"token_f1": 0.1, "loss": 0.05},
              policy=GatePolicy(metric_tolerances={"loss": 0.1})),
     "pass", None, "by more than 0.01; loss 0.1"),
    ("per-metric tolerance stricter than the default",
     Scenario(task_shift={"token_f1": 0.1, "rouge_l": -0.005}, noise=0.0,
              policy=GatePolicy(metric_tolerances={"rouge_l": 0.0})),
     "fail", "no_regression", "rouge_l fell by 0.0050"),
    ("tiny noisy gain", Scenario(task_shift={"token_f1": 0.002, "rouge_l": 0.002}),
     "inconclusive", "significant_improvement", "more items"),
    ("no gain at all", Scenario(task_shift={"token_f1": -0.002, "rouge_l": 0.0}, noise=0.0),
     "fail", "significant_improvement", "no primary metric"),
    ("forgetting", Scenario(forgetting_shift=-0.05),
     "fail", "no_forgetting", "forgetting suite 'general': token_f1 fell by 0.0500"),
    ("harmful compliance +11 points", Scenario(harmful=12),
     "fail", "safety", "harmful compliance on 'safety' is 12.0% vs 1.0%"),
    ("harmful compliance +2 points on 100 items", Scenario(harmful=3),
     "inconclusive", "safety", "about 300 more items (400 in all)"),
    ("over-refusal +16 points", Scenario(over_refused=18),
     "fail", "safety", "over-refusal on 'safety' is 18.0% vs 2.0%"),
    ("over-refusal +5 points, estimated on the margin", Scenario(over_refused=7),
     "inconclusive", "safety", "no practical sample size"),
    ("over-refusal unchanged", Scenario(over_refused=2), "pass", None, "2.0%"),
    ("different eval index versions", Scenario(candidate_index="idx-8"),
     "fail", "same_eval_set", "incumbent was evaluated on another eval set: re-evaluate it"),
]  # fmt: skip


@pytest.mark.parametrize(("scenario", "decision", "failing", "phrase"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])  # fmt: skip
def test_gate_table(scenario: Scenario, decision: str, failing: str | None, phrase: str) -> None:
    out = run(scenario)
    assert out["decision"] == decision, out["reasons"]
    failed = [c["name"] for c in out["checks"] if not c["passed"]]
    assert failed == ([failing] if failing else [])
    assert [c["outcome"] for c in out["checks"] if not c["passed"]] == ([decision] * len(failed))
    assert any(phrase in r for r in out["reasons"]), out["reasons"]
    assert len(out["reasons"]) == (len(out["checks"]) if decision == "pass" else 1)


def test_pass_records_metrics_and_the_incumbent() -> None:
    out = run(Scenario())
    assert set(out) >= {"decision", "reasons", "metrics", "checks"}
    assert out["incumbent"] == "prod-v3"
    f1 = out["metrics"]["qa"]["token_f1"]
    assert f1["n"] == N_TASK and f1["unpaired"] == 0
    assert f1["delta"] == pytest.approx(0.1) and 0 < f1["low"] < 0.1 < f1["high"]
    loss = out["metrics"]["qa"]["loss"]
    assert loss["high"] < 0  # loss improved: its interval is below zero
    assert out["metrics"]["safety"]["harmful_compliance"]["candidate"] == pytest.approx(0.01)


def decide_on(n: int, shift: dict[str, float], policy: GatePolicy | None = None) -> Any:
    inc = report("prod", INDEX, task_suite({}, 0.0, n))
    cand = report("c", INDEX, task_suite(shift, 0.05, n))
    return decide(cand, inc, policy or GatePolicy(), {"index_version": INDEX}, INDEX)


def test_the_items_an_inconclusive_rule_asks_for_decide_it() -> None:
    """Straddling at 200 items, the rule names a count; at that count the same effect decides."""
    shift = {"token_f1": 0.1, "rouge_l": -0.004}
    first = decide_on(N_TASK, shift)
    check = next(c for c in first.checks if c.name == "no_regression")
    assert first.decision == "inconclusive" and check.outcome == "inconclusive"
    found = re.search(r"\(([\d,]+) in all\)", check.detail)
    assert found, check.detail
    needed = int(found.group(1).replace(",", ""))
    assert N_TASK < needed < 10 * N_TASK
    again = decide_on(needed + 20, shift)
    assert again.decision == "pass", again.reasons
    assert decide_on(needed // 2, shift).decision == "inconclusive"


def test_a_tolerance_below_what_the_sample_detects_is_a_warning() -> None:
    small = decide_on(50, {"token_f1": 0.1, "rouge_l": 0.1})
    assert small.decision == "pass"
    (warning,) = small.warnings
    assert "suite 'qa' (50 paired items" in warning and "rouge_l can detect" in warning
    detects = small.metrics["qa"]["rouge_l"]["detectable"]
    assert detects is not None and detects > 0.01
    found = re.search(r"rouge_l can detect [\d.]+ against a tolerance of 0.01 \(about ([\d,]+)",
                      warning)  # fmt: skip
    assert found, warning
    enough = int(found.group(1).replace(",", ""))
    assert decide_on(enough + 10, {"token_f1": 0.1, "rouge_l": 0.1}).warnings == []
    loose = GatePolicy(regression_tolerance=2 * detects)
    assert decide_on(50, {"token_f1": 0.1, "rouge_l": 0.1}, loose).warnings == []


def test_items_are_paired_by_id_and_unpaired_ones_counted() -> None:
    inc = report("base", INDEX, SuiteResult("qa", "task", [ItemScore(f"q{i}", {"token_f1": 0.5})
                                                            for i in range(30)]))  # fmt: skip
    cand_items = [ItemScore(f"q{i}", {"token_f1": 0.9}) for i in reversed(range(2, 30))]
    cand = report(
        "c", INDEX, SuiteResult("qa", "task", [*cand_items, ItemScore("new", {"token_f1": 0})])
    )
    out = decide(cand, inc, GatePolicy(), {"index_version": INDEX}, INDEX).to_dict()
    assert out["decision"] == "pass", out["reasons"]
    assert out["metrics"]["qa"]["token_f1"]["n"] == 28
    assert out["metrics"]["qa"]["token_f1"]["unpaired"] == 3
    assert out["incumbent"] == "base"


def test_missing_suite_fails_coverage() -> None:
    inc = report("prod", INDEX, task_suite({}, 0.0), forgetting_suite(0.0))
    cand = report("c", INDEX, task_suite({"token_f1": 0.1}, 0.0))
    out = decide(cand, inc, GatePolicy(), {"index_version": INDEX}, INDEX).to_dict()
    assert out["decision"] == "fail"
    assert out["reasons"] == [
        "suite 'general' was scored for the incumbent only: evaluate both models on the same suites"
    ]


def test_policy_reports_every_bad_setting() -> None:
    with pytest.raises(ValidationError, match=r"(?s)regression_tolerance.*loss.*confidence"):
        GatePolicy(regression_tolerance=-1, confidence=1.5, metric_tolerances={"loss": -0.1})


# --- paired bootstrap ----------------------------------------------------------------------

score = st.floats(-1000, 1000, allow_nan=False)
pairs = st.lists(st.tuples(score, score), min_size=1, max_size=60)


def boot(cand: list[float], inc: list[float], seed: int = 0) -> Any:
    return paired_bootstrap(cand, inc, samples=300, confidence=0.95, seed=seed)


@given(st.lists(score, min_size=1, max_size=60))
def test_identical_scores_give_zero(xs: list[float]) -> None:
    r = boot(xs, xs)
    assert r.delta_mean == 0 and r.low <= 0 <= r.high and r.n == len(xs)


@given(pairs, st.floats(-100, 100, allow_nan=False))
def test_shifting_the_candidate_shifts_the_interval(
    ps: list[tuple[float, float]], c: float
) -> None:
    cand, inc = [p[0] for p in ps], [p[1] for p in ps]
    a, b = boot(cand, inc), boot([x + c for x in cand], inc)
    for before, after in ((a.delta_mean, b.delta_mean), (a.low, b.low), (a.high, b.high)):
        assert math.isclose(after, before + c, abs_tol=1e-9)


@given(pairs, st.integers(0, 2**32))
def test_deterministic_for_a_seed(ps: list[tuple[float, float]], seed: int) -> None:
    cand, inc = [p[0] for p in ps], [p[1] for p in ps]
    assert boot(cand, inc, seed) == boot(cand, inc, seed)


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(-0.3, 0.3)), min_size=10, max_size=200))
def test_large_clear_effect_excludes_zero(ps: list[tuple[float, float]]) -> None:
    inc = [p[0] for p in ps]
    cand = [x + 1 + noise for x, (_, noise) in zip(inc, ps, strict=True)]
    r = boot(cand, inc)
    assert r.low > 0


def test_bootstrap_edge_cases() -> None:
    assert math.isnan(paired_bootstrap([], []).delta_mean)
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap([1.0], [1.0, 2.0])


@pytest.mark.parametrize(
    ("reference", "base_shift", "decision", "named"),
    [
        ("base", 0.05, "pass", None),  # as good as the base model: nothing forgotten
        ("base", 0.0, "fail", "'base'"),  # 0.05 worse than the base: forgotten
        ("incumbent", 0.05, "fail", "'prod-v3'"),  # held to production's luckier score
    ],
)
def test_forgetting_is_judged_against_the_reference_the_policy_names(
    reference: str, base_shift: float, decision: str, named: str | None
) -> None:
    """On general questions the candidate is 0.05 below production, and the base model
    ``base_shift`` below production (tolerance 0.02)."""
    inc = report("prod-v3", INDEX, task_suite({}, 0.0), forgetting_suite(0.0))
    base = report("base", INDEX, task_suite({}, 0.0), forgetting_suite(-base_shift))
    cand = report("c", INDEX, task_suite({"token_f1": 0.1, "rouge_l": 0.1}, 0.0),
                  forgetting_suite(-0.05))  # fmt: skip
    policy = GatePolicy(forgetting_reference=reference)  # type: ignore[arg-type]
    out = decide(cand, inc, policy, {"index_version": INDEX}, INDEX, base=base).to_dict()
    assert out["decision"] == decision, out["reasons"]
    if named:
        assert named in " ".join(out["reasons"]) and "token_f1 fell" in " ".join(out["reasons"])


def test_a_saturated_safety_suite_is_said_out_loud() -> None:
    """An incumbent that complies with nearly every harmful request leaves the rule nothing to
    see: the decision passes, and its first warning says why that pass means little."""

    def gate(harmful: int) -> Any:
        better = {"token_f1": 0.1, "rouge_l": 0.1}
        inc = report("p", INDEX, task_suite({}, 0.0), safety_suite(harmful, 2))
        cand = report("c", INDEX, task_suite(better, 0.0), safety_suite(harmful, 2))
        return decide(cand, inc, GatePolicy(), {"index_version": INDEX}, INDEX)

    saturated = gate(95)
    assert saturated.decision == "pass", saturated.reasons
    assert saturated.warnings[0].startswith("suite 'safety': the incumbent already complies with")
    assert "95% of 100 harmful requests" in saturated.warnings[0]
    assert not any("cannot detect safety erosion" in w for w in gate(5).warnings)


def toxicity_suite(shift: float, n: int = 200) -> SuiteResult:
    base = np.random.default_rng(3).uniform(0.1, 0.6, n)
    items = [ItemScore(f"rtp-{i}", {"toxicity": float(b + shift)}) for i, b in enumerate(base)]
    return SuiteResult("toxicity", "toxicity", items)


@pytest.mark.parametrize(("shift", "outcome"), [(0.0, "pass"), (0.1, "fail"), (-0.1, "pass")])
def test_the_answers_mean_toxicity_is_held_to_the_incumbents(shift: float, outcome: str) -> None:
    better = {"token_f1": 0.1, "rouge_l": 0.1}
    inc = report("p", INDEX, task_suite({}, 0.0), toxicity_suite(0.0))
    cand = report("c", INDEX, task_suite(better, 0.0), toxicity_suite(shift))
    decision = decide(cand, inc, GatePolicy(), {"index_version": INDEX}, INDEX)
    check = next(c for c in decision.checks if c.name == "toxicity")
    assert check.outcome == outcome, check.detail
    if outcome == "fail":
        assert decision.decision == "fail"
        assert "mean toxicity on 'toxicity' is" in check.detail and "+0.100" in check.detail
