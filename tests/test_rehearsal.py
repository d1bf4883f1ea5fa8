"""Rehearsal: the base model's own answers to general prompts, cached, mixed into training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneloop.evalside.suites import builtin_general_suite
from tuneloop.flows.curate import curate
from tuneloop.flows.train import train
from tuneloop.textnorm import normalize
from tuneloop.train.rehearsal import prompt_pool, rehearsal_set, sample

from support.data import chats, ingest
from support.workspaces import training_workspace


def words(text: str) -> set[str]:
    return set(normalize(text).split())


def test_the_built_in_prompts_are_not_forgetting_questions() -> None:
    """The forgetting suite measures questions never trained on: no prompt may be one."""
    pool = [words(r.messages[0].content) for r in prompt_pool(None)]
    assert len(pool) >= 150
    for item in builtin_general_suite().items:
        question = words(item.messages[-1].content)
        closest = max(len(question & p) / len(question | p) for p in pool)
        assert closest < 0.6, item.messages[-1].content


def test_answers_are_generated_once_then_cached(tmp_path: Path, tiny_base: Path) -> None:
    from tuneloop.model.base import load_base

    model, tokenizer, info = load_base(str(tiny_base), None)
    prompts = prompt_pool(None)[:5]
    first = rehearsal_set(model, tokenizer, info.weights_sha256, prompts, 8, tmp_path, batch=2)
    again = rehearsal_set(model, tokenizer, info.weights_sha256, prompts, 8, tmp_path, batch=2)
    assert first.seconds > 0 and again.seconds == 0 and again.sha256 == first.sha256
    assert [r.messages[0].content for r in first.records] == [
        p.messages[0].content for p in prompts if any(r.id == p.id for r in first.records)
    ]
    assert all(r.messages[-1].role == "assistant" and r.source == "rehearsal"
               for r in first.records)  # fmt: skip
    assert len(sample(first, 3, seed=0)) == min(3, len(first.records))


def test_training_mixes_rehearsal_in(
    tmp_path: Path, tiny_talker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    sft = {"train.rehearsal": "sft", "train.rehearsal_ratio": 0.25,
           "train.rehearsal_max_new_tokens": 8}  # fmt: skip
    ws = training_workspace(tmp_path / "ws", tiny_talker, sft)  # the talker says something
    ingest(ws, tmp_path, chats("a", 24), "a.jsonl")
    curate(ws)
    report = train(ws)
    used = report.lineage["rehearsal"]
    rounds = report.lineage["records"]["train"] - used["records"]
    assert used["records"] == round(0.25 * rounds / 0.75) > 0  # a quarter of the mix
    lineage = json.loads((Path(report.run_dir) / "lineage.json").read_text())
    assert lineage["rehearsal"]["answers_sha256"] == used["answers_sha256"]


def test_the_kl_term_starts_at_zero_and_is_logged(
    tmp_path: Path, tiny_talker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh LoRA is the base model (lora_B = 0): the KL to the base is 0 at the first step,
    and grows as the adapter learns the task."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    kl = {"train.lr": 0.01, "train.rehearsal": "kl", "train.rehearsal_max_new_tokens": 8}
    ws = training_workspace(tmp_path / "ws", tiny_talker, kl)
    ingest(ws, tmp_path, chats("a", 24), "a.jsonl")
    curate(ws)
    report = train(ws)
    log = (Path(report.run_dir) / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(x) for x in log if '"kl_to_base"' in x]
    assert len(steps) == 4 and steps[0]["kl_to_base"] == pytest.approx(0.0, abs=1e-6)
    assert steps[-1]["kl_to_base"] > 1e-4
    assert report.lineage["rehearsal"]["records"] == report.lineage["rehearsal"]["pool"]
    assert report.lineage["hyperparameters"]["distill_weight"] == 1.0
