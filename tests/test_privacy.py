"""Differentially private training on a tiny Llama: config, the plan, per-user gradients, the
guard against an adapter that silently does not train, exact resume, the budget ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tuneloop.config import parse_config
from tuneloop.config_file import default_toml
from tuneloop.errors import ConfigError, PrivacyBudgetError, TrainingGuardError
from tuneloop.flows.curate import curate
from tuneloop.flows.train import settings_from, train
from tuneloop.model.base import load_base
from tuneloop.train.adapter import adapter_weights
from tuneloop.train.data import single_rows, tokenize
from tuneloop.train.ledger import PrivacyLedger
from tuneloop.train.loop import TrainSettings
from tuneloop.train.lora import LoraSettings, with_lora
from tuneloop.train.privacy import PoissonSampler, PrivacySettings, make_plan
from tuneloop.train.private import PrivateTrainer
from tuneloop.workspace import Workspace

from support.data import ingest
from support.training import Recorder, records
from support.workspaces import make_workspace

PRIVACY = "\n[train.privacy]\nepsilon = 8.0\nbudget_epsilon = 20.0\n"


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ("[train.privacy]\nbudget_epsilon = 8.0\n", "train.privacy.epsilon: Field required"),
        ("[train.privacy]\nepsilon = 8.0\n", "train.privacy.budget_epsilon: Field required"),
        ("[train.privacy]\nepsilon = 8.0\nbudget_epsilon = 4.0\n", "budget_epsilon (4.0) is below"),
        ("[train.privacy]\nepsilon = 0\nbudget_epsilon = 4.0\n", "train.privacy.epsilon"),
        ("[train.privacy]\nepsilon = 1\nbudget_epsilon = 4\ndelta = 1.5\n", "train.privacy.delta"),
        ("[train.privacy]\nepsilon = 1\nbudget_epsilon = 4\naccountant = 'gdp'\n", "accountant"),
        ("[train.privacy]\nepsilon = 1\nbudget_epsilon = 4\nmax_grad_norm = 0\n", "max_grad_norm"),
        ("[train]\nrehearsal = 'kl'\n[train.privacy]\nepsilon = 1\nbudget_epsilon = 4\n",
         "rehearsal = 'kl' is not supported"),
    ],
    ids=["no-epsilon", "no-budget", "budget-below-round", "epsilon-zero", "delta-above-1",
         "unknown-accountant", "zero-clip", "kl-rehearsal"],
)  # fmt: skip
def test_privacy_config_errors(section: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(section, Path("tuneloop.toml"))
    assert problem in str(info.value) and "\n" not in str(info.value)


def test_privacy_config_forces_packing_off_and_keeps_default_config() -> None:
    cfg = parse_config(PRIVACY, Path("tuneloop.toml"))
    settings = settings_from(cfg.train)
    assert settings.privacy == PrivacySettings(epsilon=8.0, delta=1e-6)
    assert not settings.packing and settings.to_dict()["privacy"]["epsilon"] == 8.0
    plain = settings_from(parse_config(default_toml("x"), Path("t")).train)
    assert plain.packing and "privacy" not in plain.to_dict()  # non-private lineage unchanged


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_plan_reaches_at_most_the_target(accountant: Any) -> None:
    settings = PrivacySettings(epsilon=4.0, delta=1e-5, accountant=accountant)
    plan = make_plan(settings, [f"user:{i}" for i in range(200)], 8, 50)
    assert plan.sample_rate == pytest.approx(0.04) and plan.noise_multiplier > 0.5
    assert 3.9 <= plan.epsilon_at(50) <= 4.0 and plan.epsilon_at(10) < plan.epsilon_at(50)
    assert plan.unit_kind == "user"


def test_plan_refuses_a_delta_as_large_as_one_user() -> None:
    with pytest.raises(ConfigError, match="not below 1 / 10 users"):
        make_plan(PrivacySettings(epsilon=8.0, delta=0.2), [f"user:{i}" for i in range(10)], 4, 5)


def test_poisson_sampling_is_a_function_of_seed_and_step() -> None:
    rows = [[i, i + 100, i + 200] for i in range(1000)]
    sampler = PoissonSampler(rows, rate=0.1, cap=2, seed=3)
    first = sampler.sample(7)
    assert first == PoissonSampler(rows, 0.1, 2, 3).sample(7) and first != sampler.sample(8)
    assert 60 < len(first.units) < 140  # Binomial(1000, 0.1)
    assert all(
        len(r) == 2 and set(r) <= set(rows[u]) for u, r in zip(first.units, first.rows, strict=True)
    )


@pytest.fixture(scope="module")
def tiny(tiny_base: Path) -> Path:
    return tiny_base


SETTINGS = TrainSettings(
    max_steps=6, micro_batch=2, grad_accum=2, lr=5e-3, warmup_steps=1, eval_every=3,
    save_every=2, patience=10, max_len=64, block_size=64, packing=False,
    lora=LoraSettings(r=4, alpha=8, dropout=0.0),
    privacy=PrivacySettings(epsilon=8.0, delta=1e-5, max_examples_per_user=2),
)  # fmt: skip


def private_trainer(
    tiny: Path, out: Path, settings: TrainSettings = SETTINGS, hook: Any = None
) -> PrivateTrainer:
    model, tok, _ = load_base(str(tiny))
    torch.manual_seed(settings.seed)
    model = with_lora(model, settings.lora)
    examples = tokenize(records(40), tok, settings.max_len).examples
    units = [f"user:{i % 10}" for i in range(32)]  # ten users, 3-4 examples each
    rows, val = single_rows(examples[:32]), single_rows(examples[32:])
    return PrivateTrainer(model, tok.pad_token_id, rows, val, settings, out, units, hook)


def test_private_run_spends_at_most_epsilon_and_only_trains_the_adapter(
    tiny: Path, tmp_path: Path
) -> None:
    trainer = private_trainer(tiny, tmp_path)
    base = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    result = trainer.run()
    spent = trainer.privacy_lineage()
    assert result.steps == 6 and 0 < spent["epsilon"] <= 8.0
    assert spent["unit"] == "user" and spent["units"] == 10 and spent["sample_rate"] == 0.4
    for name, param in trainer.model.named_parameters():
        moved = not torch.equal(param, base[name])
        assert moved == ("lora_" in name), name
    assert not any(hasattr(p, "grad_sample") for p in trainer.model.parameters())  # unhooked


def test_per_unit_gradient_is_the_gradient_of_the_users_mean_loss(
    tiny: Path, tmp_path: Path
) -> None:
    trainer = private_trainer(tiny, tmp_path)
    with torch.no_grad():  # a non-zero lora_B, so that lora_A gets a gradient too
        for name, param in trainer.model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    trainer.model.train()
    trainer._per_unit_gradients([[0, 1, 5], [2]])
    params = trainer.optimizer.params
    per_unit = [p.grad_sample.clone() for p in params]
    trainer.hooks.disable_hooks()
    for k, rows in enumerate([[0, 1, 5], [2]]):
        for p in params:
            p.grad = None
        trainer._example_losses([trainer.rows[r] for r in rows]).mean().backward()
        worst = max(
            float((p.grad - g[k]).abs().max()) for p, g in zip(params, per_unit, strict=True)
        )
        assert worst < 1e-6


def _stall(trainer: PrivateTrainer) -> None:
    for group in trainer.optimizer.param_groups:
        group["initial_lr"] = group["lr"] = 0.0
    trainer.scheduler.base_lrs = [0.0 for _ in trainer.scheduler.base_lrs]


def _touch_base(trainer: PrivateTrainer) -> None:
    step = trainer.scheduler.step
    weight = trainer.model.base_model.model.model.norm.weight

    def and_change_the_base() -> None:
        step()
        with torch.no_grad():
            weight.add_(1e-3)

    trainer.scheduler.step = and_change_the_base  # type: ignore[method-assign]


def _unfreeze_a_norm(trainer: PrivateTrainer) -> None:
    trainer.model.base_model.model.model.norm.weight.requires_grad_(True)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (_stall, "after step 1 the LoRA weights did not move (16 of 16"),
        (_touch_base, "after step 1 base weights changed (1 of"),
        (_unfreeze_a_norm, "non-LoRA weights are trainable (1 of 17 (base_model.model.model.norm"),
    ],
    ids=["lora-stuck", "base-changed", "base-trainable"],
)
def test_guard_catches_a_broken_setup(
    tiny: Path, tmp_path: Path, breakage: Any, message: str
) -> None:
    trainer = private_trainer(tiny, tmp_path)
    breakage(trainer)
    with pytest.raises(TrainingGuardError) as info:
        trainer.run()
    assert message in str(info.value) and "\n" not in str(info.value)


def test_private_resume_is_exact(tiny: Path, tmp_path: Path) -> None:
    straight = private_trainer(tiny, tmp_path / "straight")
    straight.run()
    with pytest.raises(KeyboardInterrupt):
        private_trainer(tiny, tmp_path / "cut", hook=Recorder(stop_at=5)).run()
    resumed = private_trainer(tiny, tmp_path / "cut").run(resume=True)
    assert resumed.resumed_from == 4
    a = adapter_weights(tmp_path / "cut" / "best")
    b = adapter_weights(tmp_path / "straight" / "best")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6


# -- the workspace flow: lineage, registry, ledger, budget ----------------------------------

FLOW: dict[str, Any] = {  # three private steps of short rows, from a fresh adapter each round
    "gateway.eval_fraction": 0.0,
    "train.max_steps": 3,
    "train.micro_batch": 2,
    "train.grad_accum": 2,
    "train.eval_every": 3,
    "train.save_every": 3,
    "train.max_len": 64,
    "train.lora_r": 4,
    "train.lora_alpha": 8,
    "train.replay_ratio": 0.0,
    "train.init_from": "base",
    "train.privacy.epsilon": 4.0,
    "train.privacy.budget_epsilon": 6.0,
}


def user_chats(prefix: str, users: int, each: int) -> list[dict[str, object]]:
    return [
        {
            "id": f"{prefix}{u}-{k}",
            "user_id": f"user{u}",
            "messages": [
                {"role": "user", "content": f"please reset my password {prefix} {u} {k} now"},
                {"role": "assistant", "content": f'{{"intent": "reset_password", "n": {k}}}'},
            ],
        }
        for u in range(users)
        for k in range(each)
    ]


@pytest.fixture
def private_ws(tmp_path: Path, tiny_base: Path) -> Workspace:
    return make_workspace(tmp_path / "ws", FLOW, {"train.base": str(tiny_base)})


def test_private_round_records_epsilon_and_the_budget_refuses_the_next(
    private_ws: Workspace, tmp_path: Path
) -> None:
    from tuneloop.flows.register import registry_for

    ingest(private_ws, tmp_path, user_chats("a", 12, 2), "a.jsonl")
    curate(private_ws)
    first = train(private_ws)
    spent = first.lineage["privacy"]
    users = spent["units"]  # twelve, less those the validation split holds
    assert 0 < spent["epsilon"] <= 4.0 and spent["unit"] == "user" and 9 <= users <= 12
    assert spent["delta"] == 1e-6 and spent["steps"] == 3 and spent["noise_multiplier"] > 0
    assert first.lineage["hyperparameters"]["packing"] is False
    version = registry_for(private_ws).get(str(first.version))
    assert version.lineage.hyperparameters["privacy"]["epsilon"] == spent["epsilon"]
    again = train(private_ws, resume=True)  # the same run: charged once, not twice
    assert again.run_id == first.run_id
    ledger = json.loads(private_ws.privacy_ledger_path.read_text())
    assert list(ledger["rounds"]) == [first.run_id]
    assert ledger["rounds"][first.run_id]["units"] == users
    assert "user0" not in json.dumps(ledger)  # users are stored hashed
    ingest(private_ws, tmp_path, user_chats("b", 12, 2), "b.jsonl")  # the same twelve users
    curate(private_ws)
    with pytest.raises(PrivacyBudgetError) as info:
        train(private_ws)
    expected = f"{users} of {users} users in this round would pass train.privacy.budget_epsilon = 6"
    assert expected in str(info.value)
    ledger_now = PrivacyLedger(private_ws.privacy_ledger_path)
    assert max(ledger_now.spent(f"user:user{u}") for u in range(12)) == spent["epsilon"]
