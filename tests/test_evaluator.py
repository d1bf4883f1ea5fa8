"""The evaluator on a tiny Llama: scores, loss, the answer cache, safety, the store, the probes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tuneloop import progress
from tuneloop.errors import InputError, TuneloopError
from tuneloop.evalside.evaluator import Evaluator, load_model_for_eval
from tuneloop.evalside.probe import memorization_probe
from tuneloop.evalside.report import EvalReport, ItemScore, SuiteResult
from tuneloop.evalside.store import EvalStore
from tuneloop.evalside.suites import (
    SuiteItem,
    budget,
    forgetting_suite,
    load_user_suite,
    safety_suite,
)
from tuneloop.records import Message, Record
from tuneloop.train.data import chat_example

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
QA = [("the card was lost", "card_lost"), ("reset my password", "password"), ("fee?", "fees")]
ITEMS = [
    SuiteItem(f"q{i}", (Message("user", q),), a, {"suite": "t"}) for i, (q, a) in enumerate(QA)
] + [SuiteItem("q3", (Message("system", "be brief"), Message("user", "hi")), "hello", {})]
Tiny = tuple[Any, Any, str]
EXPECT = ("refuse", "comply")


@pytest.fixture(scope="module")
def tiny(tiny_base: Path) -> Tiny:
    return load_model_for_eval(str(tiny_base))


def evaluator(tiny: Tiny, cache: Path | None = None, batch_size: int = 4) -> Evaluator:
    model, tok, fp = tiny
    return Evaluator(
        model, tok, "base", cache, max_new_tokens=8, batch_size=batch_size, fingerprint=fp
    )


def count_generate(monkeypatch: pytest.MonkeyPatch, model: Any) -> list[int]:
    calls: list[int] = []
    original = model.generate

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(int(kwargs["input_ids"].shape[0]))
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "generate", counted)
    return calls


def test_score_items_gives_every_metric_and_a_finite_loss(tiny: Tiny) -> None:
    result = evaluator(tiny).score_items("t", "task", ITEMS)
    assert (result.name, result.kind) == ("t", "task")
    assert [i.item_id for i in result.items] == ["q0", "q1", "q2", "q3"]
    for item in result.items:
        assert set(item.metrics) == {"exact_match", "token_f1", "rouge_l", "chrf", "loss"}
        assert math.isfinite(item.metrics["loss"]) and item.metrics["loss"] > 0
        assert item.expected is None and item.refused is None
    assert result.items[0].slices == {"suite": "t"}


@pytest.mark.parametrize(("kind", "scored"), [("task", True), ("forgetting", False)])
def test_field_acc_on_json_task_answers_only(tiny: Tiny, kind: str, scored: bool) -> None:
    """Items whose reference is a JSON object get field_acc on task suites; the others not."""
    model, tok, fp = tiny
    ticket = SuiteItem("j", (Message("user", "lost card"),), '{"intent": "card_lost"}', {})
    ev = Evaluator(model, tok, "base", None, 8, 4, fp, fields=["intent"])
    result = ev.score_items("t", kind, [*ITEMS, ticket])  # type: ignore[arg-type]
    by_id = {i.item_id: i.metrics for i in result.items}
    assert ("field_acc" in by_id["j"]) is scored
    assert not any("field_acc" in by_id[i.id] for i in ITEMS)
    if scored:  # the tiny model writes no ticket
        assert by_id["j"]["field_acc"] == 0.0


def test_loss_is_the_completion_only_cross_entropy(tiny: Tiny) -> None:
    model, tok, _ = tiny
    batched = evaluator(tiny, batch_size=4).score_items("t", "task", ITEMS)
    single = evaluator(tiny, batch_size=1).score_items("t", "task", ITEMS)
    for item, b, s in zip(ITEMS, batched.items, single.items, strict=True):
        messages = [*item.chat(), {"role": "assistant", "content": item.reference}]
        ex = chat_example(item.id, messages, tok)
        with torch.no_grad():
            want = model(
                input_ids=torch.tensor([ex.input_ids]), labels=torch.tensor([ex.labels])
            ).loss.item()
        assert s.metrics["loss"] == pytest.approx(want, rel=1e-5)
        assert b.metrics["loss"] == pytest.approx(want, rel=1e-4)  # padding changes nothing


def test_cache_makes_a_rerun_generate_nothing(
    tiny: Tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_generate(monkeypatch, tiny[0])
    first = evaluator(tiny, tmp_path).score_items("t", "task", ITEMS)
    assert sum(calls) == 4
    again = evaluator(tiny, tmp_path).score_items("t", "task", ITEMS)
    assert sum(calls) == 4 and again == first
    changed = [*ITEMS[:3], SuiteItem("q3", ITEMS[3].messages, "a new reference", {})]
    evaluator(tiny, tmp_path).score_items("t", "task", changed)
    assert sum(calls) == 5  # only the edited item is answered again
    model, tok, _ = tiny
    other = Evaluator(model, tok, "base", tmp_path, max_new_tokens=8, fingerprint="other")
    other.score_items("t", "task", ITEMS)
    assert sum(calls) == 9  # other weights never reuse an answer


def test_safety_items_record_expected_and_refused(
    tiny: Tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [i for i in safety_suite().items if i.id in {"safety-refuse-01", "safety-comply-01"}]
    ev = evaluator(tiny)
    refusal = "I can't help with that."
    monkeypatch.setattr(ev, "_generate", lambda prompts, cache=None: [refusal] * len(prompts))
    result = ev.score_items("safety", "safety", items)
    got = {i.item_id: (i.expected, i.refused) for i in result.items}
    assert got == {"safety-refuse-01": ("refuse", True), "safety-comply-01": ("comply", True)}


def test_evaluate_store_scores_every_suite_with_slices(tiny: Tiny, tmp_path: Path) -> None:
    def rec(i: int, week_day: str, source: str | None = "email") -> Record:
        msgs = (Message("user", f"question {i}"), Message("assistant", f"answer {i}"))
        return Record(f"e{i}", "chat", msgs, source=source, created_at=f"{week_day}T10:00:00+00:00")

    document = Record("doc", "text", text="a document has no reference answer")
    with EvalStore(tmp_path / "eval.sqlite") as store:
        store.append(
            [("support", rec(0, "2026-11-16"), None), ("support", rec(1, "2026-11-25"), None)]
        )
        store.append([("billing", rec(2, "2026-11-16", None), None), ("billing", document, None)])
        ev = evaluator(tiny)
        results = ev.evaluate_store(store, None)
        newest = ev.evaluate_store(store, ["support"], limit=1, newest=["support"])
        spread = ev.evaluate_store(store, ["support"], limit=1)
        with pytest.raises(TuneloopError, match="it has: billing, support"):
            ev.evaluate_store(store, ["nope"])
    assert sorted(results) == ["billing", "support"]
    assert all(r.kind == "task" for r in results.values())
    assert [i.slices for i in results["support"].items] == [
        {"window": "2026-W47", "source": "email", "suite": "support"},
        {"window": "2026-W48", "source": "email", "suite": "support"},
    ]
    assert results["billing"].items[0].slices["source"] == "unknown"
    assert [i.item_id for i in newest["support"].items] == ["e1"]
    assert [i.item_id for i in spread["support"].items] == ["e0"]
    assert ev.skipped == [{"suite": "billing", "item_id": "doc", "reason": "no_reference_answer"}]
    report = ev.build_report("base", results, "idx-1", {"flagged": False})
    assert EvalReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report
    assert report.extra["skipped"] == ev.skipped


def scored(window: str, f1: float, loss: float, n: int) -> list[ItemScore]:
    metrics = {"token_f1": f1, "loss": loss}
    return [ItemScore(f"{window}-{k}", metrics, {"window": window}) for k in range(n)]


@pytest.mark.parametrize(
    ("old", "fresh", "flagged"),
    [
        ((0.9, 1.0), (0.5, 1.0), True),
        ((0.6, 1.0), (0.6, 2.0), True),
        ((0.6, 1.0), (0.55, 1.2), False),
    ],
)
def test_memorization_probe_flags_a_planted_gap(
    old: tuple[float, float], fresh: tuple[float, float], flagged: bool
) -> None:
    items = (
        scored("2026-W40", *old, 5) + scored("2026-W47", *old, 5) + scored("2026-W48", *fresh, 5)
    )
    items.append(ItemScore("x", {"token_f1": 0.0}, {"window": "unknown"}))
    probe = memorization_probe(SuiteResult("t", "task", items), "2026-W47")
    assert (probe["old_items"], probe["fresh_items"], probe["unknown_window"]) == (10, 5, 1)
    assert probe["token_f1_gap"] == pytest.approx(old[0] - fresh[0])
    assert probe["loss_gap"] == pytest.approx(fresh[1] - old[1])
    assert probe["flagged"] is flagged
    with pytest.raises(TuneloopError, match="ISO week"):
        memorization_probe(SuiteResult("t", "task", items), "week 47")


def test_forgetting_suite_without_shared_data() -> None:
    suite = forgetting_suite(None, n=10)
    assert (suite.name, suite.kind, len(suite.items)) == ("forgetting", "forgetting", 10)
    assert all(i.reference and i.messages[-1].role == "user" for i in suite.items)
    assert len(forgetting_suite(None).items) == 30


@pytest.mark.skipif(not (SHARED_DATA / "gsm8k").is_dir(), reason="no ../shared/data")
def test_forgetting_suite_from_gsm8k_and_mmlu() -> None:
    suite = forgetting_suite(SHARED_DATA, n=20)
    sources = [i.slices["source"] for i in suite.items]
    assert sources.count("gsm8k") == 10 and sources.count("mmlu") == 10
    assert suite.items[0].reference == "18"  # "#### 18" in the first GSM8K test answer
    assert all(i.reference in "ABCD" for i in suite.items if i.slices["source"] == "mmlu")
    assert len({i.id for i in suite.items}) == 20


def test_load_user_suite_and_its_errors(tmp_path: Path) -> None:
    good = tmp_path / "mine.jsonl"
    rows = [{"prompt": f"p{i}", "completion": "c", "expected": e} for i, e in enumerate(EXPECT)]
    good.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    suite = load_user_suite(good, "safety")
    assert suite.name == "mine"
    assert [i.expected for i in suite.items] == list(EXPECT)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "no answer"}]}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl:1: .* no reference answer"):
        load_user_suite(bad, "task")
    unlabelled = tmp_path / "unlabelled.jsonl"
    unlabelled.write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n")
    with pytest.raises(InputError, match="expected=None"):
        load_user_suite(unlabelled, "safety")


def test_load_model_for_eval_with_an_adapter(tmp_path: Path, tiny_base: Path) -> None:
    from tuneloop.train.adapter import save_adapter
    from tuneloop.train.lora import LoraSettings, with_lora

    folder = tiny_base
    model, _, base_fp = load_model_for_eval(str(folder))
    sha = save_adapter(with_lora(model, LoraSettings(r=2, alpha=4)), tmp_path / "adapter")
    loaded, _, fp = load_model_for_eval(str(folder), tmp_path / "adapter")
    assert fp == f"{base_fp}+{sha}" and not loaded.training
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(TuneloopError, match="do not match their SHA256"):
        load_model_for_eval(str(folder), tmp_path / "adapter")
    with pytest.raises(TuneloopError, match="safetensors only"):
        load_model_for_eval(str(folder), tmp_path)


@pytest.mark.parametrize(
    ("count", "limit", "newest", "expected"),
    [
        (10, 4, False, [0, 2, 5, 7]),
        (10, None, False, list(range(10))),
        (3, 8, False, [0, 1, 2]),
        (0, 5, False, []),
        (10, 4, True, [6, 7, 8, 9]),  # a rolling window: the last items appended
        (10, None, True, list(range(10))),
        (3, 8, True, [0, 1, 2]),
    ],
)
def test_budget_spreads_over_the_suite_or_takes_the_newest(
    count: int, limit: int | None, newest: bool, expected: list[int]
) -> None:
    items = [SuiteItem(f"i{k}", (Message("user", "q"),), "a", {}) for k in range(count)]
    assert [i.id for i in budget(items, limit, newest)] == [f"i{k}" for k in expected]


@given(
    st.lists(st.sampled_from("abcde"), min_size=1, max_size=120),
    st.integers(1, 60),
)
def test_budget_keeps_each_source_in_proportion(sources: list[str], limit: int) -> None:
    """A cut suite keeps every source's share (within one item), every source while the limit
    allows, the suite's order, and no item twice."""
    items = [SuiteItem(f"i{k}", (Message("user", "q"),), "a", {"source": src})
             for k, src in enumerate(sources)]  # fmt: skip
    kept = budget(items, limit)
    ids = [int(i.id[1:]) for i in kept]
    assert ids == sorted(set(ids)) and len(kept) == min(limit, len(items))
    counts = {src: sources.count(src) for src in set(sources)}
    for src, n in counts.items():
        got = sum(1 for i in kept if i.slices["source"] == src)
        if limit >= len(items):
            assert got == n
            continue
        share = limit * n / len(items)
        floor = 1 if limit >= len(counts) else 0
        assert max(floor, math.floor(share)) - 1 <= got <= math.ceil(max(floor, share)) + 1, (
            src, got, share)  # fmt: skip
        if limit >= len(counts):
            assert got >= 1
    assert budget(items, limit) == kept  # deterministic


def test_summary_gives_means_per_slice_and_safety_rates() -> None:
    items = [
        ItemScore("a", {"token_f1": 1.0, "loss": 1.0}, {"window": "2026-W40", "source": "web"}),
        ItemScore("b", {"token_f1": 0.0, "loss": 3.0}, {"window": "2026-W41", "source": "web"}),
        ItemScore("c", {"token_f1": 0.5}, {"window": "2026-W41", "source": "web"}),
    ]
    summary = SuiteResult("t", "task", items).summary()
    assert summary["all"] == pytest.approx(
        {
            "items": 3,
            "token_f1": 0.5,
            "loss": 2.0,
            "rouge_l": None,
            "exact_match": None,
            "chrf": None,
            "field_acc": None,
            "toxicity": None,
        }
    )
    assert summary["window"]["2026-W41"]["token_f1"] == pytest.approx(0.25)
    assert "source" not in summary  # one source only: no breakdown
    safety = [
        ItemScore("h1", {}, expected="refuse", refused=False),
        ItemScore("h2", {}, expected="refuse", refused=True),
        ItemScore("b1", {}, expected="comply", refused=True),
        ItemScore("b2", {}, expected="comply", refused=False),
        ItemScore("b3", {}, expected="comply", refused=False),
        ItemScore("b4", {}, expected="comply", refused=False),
    ]
    rates = SuiteResult("s", "safety", safety).summary()["all"]
    assert (rates["harmful_compliance"], rates["over_refusal"]) == (0.5, 0.25)


@pytest.mark.parametrize(("kind", "prompted"), [("task", [True, True, True, False]),
                                                ("forgetting", [False] * 4)])  # fmt: skip
def test_task_items_are_asked_under_the_task_system_prompt(
    tiny: Tiny, monkeypatch: pytest.MonkeyPatch, kind: str, prompted: list[bool]
) -> None:
    """Task items without a system message get the deployment's; other suites never do, and
    an item's own system message is kept."""
    model, tok, fp = tiny
    seen: list[list[dict[str, str]]] = []
    original = tok.apply_chat_template

    def spy(messages: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(list(messages))
        return original(messages, *args, **kwargs)

    monkeypatch.setattr(tok, "apply_chat_template", spy)
    ev = Evaluator(model, tok, "base", None, 4, 4, fp, task_system_prompt="TRIAGE PROMPT")
    ev.score_items("t", kind, ITEMS)  # type: ignore[arg-type]
    firsts = {m[0]["content"] for m in seen if m and m[0]["role"] == "system"}
    assert ("TRIAGE PROMPT" in firsts) is any(prompted)
    assert "be brief" in firsts  # q3 brings its own


def lora_tiny(tiny: Tiny) -> Tiny:
    """The tiny model with a LoRA whose weights are not zero, so the adapter changes answers."""
    from peft import LoraConfig, get_peft_model

    model, tok, fp = tiny
    torch.manual_seed(0)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return get_peft_model(model, config).eval(), tok, fp + "+lora"


@pytest.mark.parametrize("adapter", [False, True])
def test_shared_pass_gives_the_two_pass_answers_and_losses(
    tiny: Tiny, adapter: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_tok_fp = lora_tiny(tiny) if adapter else tiny
    items = [*ITEMS, SuiteItem("long", (Message("user", "why " * 20),), "because " * 10, {})]
    two = evaluator(model_tok_fp)
    two.shared_pass = False
    apart = two._answers(items, progress.ignore)
    one = evaluator(model_tok_fp)
    monkeypatch.setattr(one, "_losses", lambda batch: pytest.fail("losses computed apart"))
    shared = one._answers(items, progress.ignore)
    if adapter:
        model_tok_fp[0].unload()  # the module-scoped tiny model goes back to its own weights
    assert [shared[i.id].prediction for i in items] == [apart[i.id].prediction for i in items]
    for item in items:
        assert shared[item.id].loss == pytest.approx(apart[item.id].loss, rel=1e-4)


def test_an_item_whose_prompt_was_cut_is_answered_the_two_pass_way(tiny: Tiny) -> None:
    long = SuiteItem("cut", (Message("user", "word " * 1500),), "ok", {})
    ev = evaluator(tiny)
    assert ev._row(long, ev._prompt_ids(long)) is None  # prompt cut to MAX_PROMPT_TOKENS
    assert ev._row(ITEMS[0], ev._prompt_ids(ITEMS[0])) is not None


@given(
    st.lists(st.tuples(st.sampled_from(["refuse", "comply"]), st.sampled_from("abcdefgh")),
             min_size=2, max_size=150),
    st.integers(2, 40),
)  # fmt: skip
@example([("refuse", s) for s in "abcdefgh"] * 5 + [("comply", "a")], 4)
def test_budget_keeps_both_expected_outcomes_before_any_source(
    pool: list[tuple[str, str]], limit: int
) -> None:
    """Each expected outcome is a stratum of its own, split first: a safety suite cut to a few
    items still scores both rates, however many sources one side has."""
    items = [SuiteItem(f"i{k}", (Message("user", "q"), ), "", {"expected": e, "source": s})
             for k, (e, s) in enumerate(pool)]  # fmt: skip
    kept = budget(items, limit)
    assert {i.slices["expected"] for i in kept} == {e for e, _ in pool}
    assert len(kept) == min(limit, len(items))
