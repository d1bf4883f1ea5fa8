"""``tuneloop train``: a dataset version (+ replay) → LoRA adapter with its full lineage.

The run folder's name is a hash of everything that defines the run (dataset, replay version,
base weights, hyperparameters), so ``--resume`` finds the interrupted run of the same job and
never continues a different one.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tuneloop import __version__, memory
from tuneloop.config import TrainConfig
from tuneloop.datasets import DatasetStore
from tuneloop.errors import WorkspaceError
from tuneloop.flows.register import register_run, registry_for
from tuneloop.model.base import BaseModelInfo, load_base
from tuneloop.model.fetch import base_folder
from tuneloop.progress import Advance
from tuneloop.progress import task as progress_task
from tuneloop.records import Record
from tuneloop.train.adapter import folder_sha256
from tuneloop.train.data import pack, single_rows, tokenize
from tuneloop.train.ledger import PrivacyLedger
from tuneloop.train.loop import (
    Trainer,
    TrainResult,
    TrainSettings,
    enable_checkpointing,
    init_distributed,
    resolve_autocast,
)
from tuneloop.train.lora import LoraSettings, with_lora
from tuneloop.train.privacy import PrivacySettings, unit_of
from tuneloop.train.private import PrivateTrainer
from tuneloop.train.rehearsal import Rehearsal, default_cache, prompt_pool, rehearsal_set, sample
from tuneloop.train.replay import ReplayBuffer, replay_count
from tuneloop.train.warm import WarmStart, load_into, warm_start
from tuneloop.workspace import RUN_LINEAGE, Workspace


def privacy_settings(cfg: TrainConfig) -> PrivacySettings | None:
    return None if cfg.privacy is None else cfg.privacy.run_settings()


def settings_from(cfg: TrainConfig, max_steps: int | None = None) -> TrainSettings:
    """The run's settings; a private run trains one example per row (packing forced off, and
    recorded as such in the hyperparameters)."""
    lora = LoraSettings(
        r=cfg.lora_r,
        alpha=cfg.lora_alpha,
        dropout=cfg.lora_dropout,
        target_modules=tuple(cfg.target_modules) if cfg.target_modules else None,
    )
    privacy = privacy_settings(cfg)
    return TrainSettings(
        max_steps=max_steps or cfg.max_steps, micro_batch=cfg.micro_batch,
        grad_accum=cfg.grad_accum, lr=cfg.lr, warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay, seed=cfg.seed, eval_every=cfg.eval_every,
        save_every=cfg.save_every, patience=cfg.patience,
        packing=cfg.packing and privacy is None,
        max_len=cfg.max_len, block_size=cfg.block_size, autocast=resolve_autocast(cfg.autocast),
        lora=lora,
        distill_weight=cfg.rehearsal_kl_weight if cfg.rehearsal == "kl" else 0.0,
        privacy=privacy,
    )  # fmt: skip


def _git(here: Path, *args: str) -> str:
    cmd = ["git", "-C", str(here), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


def code_version() -> str:
    """The git commit of the code that trained (with -dirty), else the package version."""
    here = Path(__file__).resolve().parent
    try:
        head = _git(here, "rev-parse", "HEAD")
        dirty = _git(here, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return f"tuneloop-{__version__}"
    return f"{head}{'-dirty' if dirty else ''}"


def library_versions() -> dict[str, str]:
    import peft  # noqa: PLC0415 - heavy (peft)
    import torch  # noqa: PLC0415 - heavy (torch)
    import transformers  # noqa: PLC0415 - heavy (transformers)

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__,
            "tuneloop": __version__}  # fmt: skip


@dataclass
class TrainReport:
    version: str | None  # the registered candidate (None on ranks other than the first)
    run_id: str
    run_dir: str
    adapter_dir: str
    adapter_sha256: str
    lineage: dict[str, Any]
    result: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _buffer(ws: Workspace, cfg: TrainConfig) -> ReplayBuffer:
    return ReplayBuffer(ws.replay_dir, cfg.replay_capacity, cfg.replay_strategy, cfg.seed)


def _mix_replay(
    ws: Workspace, cfg: TrainConfig, dataset: str, train: list[Record]
) -> tuple[list[Record], str | None]:
    """The round's records plus replayed ones from the buffer as it was before this round."""
    buffer = _buffer(ws, cfg)
    version = buffer.version_before(dataset)
    if version is None or cfg.replay_ratio == 0:
        return train, version
    n = replay_count(len(train), cfg.replay_ratio)
    extra = buffer.sample(n, {r.id for r in train}, cfg.seed, version)
    return train + extra, version


def run_id_for(
    dataset: str,
    replay: str | None,
    base: BaseModelInfo,
    settings: TrainSettings,
    init_sha256: str | None = None,
    rehearsal_sha256: str | None = None,
    rounds: str = "all",
) -> str:
    parts: list[Any] = [dataset, replay, base.weights_sha256, settings.to_dict()]
    if init_sha256 or rehearsal_sha256:
        parts += [init_sha256, rehearsal_sha256]
    if rounds != "all":  # other rows of the same version: a run of its own
        parts.append(rounds)
    body = json.dumps(parts, sort_keys=True)
    return "run-" + hashlib.sha256(body.encode()).hexdigest()[:12]


def _round_records(
    store: DatasetStore, version: str, records: list[Record], cfg: TrainConfig, warm: WarmStart
) -> list[Record]:
    """The round's records: the version's (``records``), or (``rounds = "new"``, continuing an
    adapter) those the adapter was not trained on; the replay buffer brings earlier ones back.

    The adapter's version is read by its train split, not by ``store.ids``: a group the split
    moved from validation to train since then was never trained on, so it is new here."""
    if cfg.rounds == "all" or warm.dataset is None:
        return records
    seen = {r.id for r in store.load(warm.dataset, split="train")}
    new = [r for r in records if r.id not in seen]
    if not new:
        raise WorkspaceError(
            f"dataset {version} has no training records that v{warm.version} (trained on "
            f'{warm.dataset}) has not seen; ingest more data, or set train.rounds = "all"'
        )
    return new


def _rehearse(
    cfg: TrainConfig, model: Any, tokenizer: Any, info: BaseModelInfo, round_size: int
) -> tuple[list[Record], Rehearsal | None]:
    """General prompts with the base model's own answers, ``rehearsal_ratio`` of the mix."""
    if cfg.rehearsal == "off":
        return [], None
    prompts = prompt_pool(Path(cfg.rehearsal_prompts) if cfg.rehearsal_prompts else None)
    found = rehearsal_set(model, tokenizer, info.weights_sha256, prompts,
                          cfg.rehearsal_max_new_tokens, default_cache())  # fmt: skip
    if cfg.rehearsal == "kl":  # every prompt, as trajectories for the KL term
        return sample(found, len(found.records), cfg.seed), found
    return sample(found, replay_count(round_size, cfg.rehearsal_ratio), cfg.seed), found


def _warm(ws: Workspace, cfg: TrainConfig, info: BaseModelInfo, model: Any,
          settings: TrainSettings) -> WarmStart:  # fmt: skip
    if cfg.init_from == "base":
        return WarmStart(None, None, None, "fresh: train.init_from = base")
    if not ws.has_registry():
        return WarmStart(None, None, None, "fresh: nothing registered yet")
    return warm_start(registry_for(ws), info.weights_sha256, settings.lora,
                      model.config.model_type, ws.warm_start_dir,
                      require_private=settings.privacy is not None)  # fmt: skip


@dataclass
class _Private:
    """A private run's trainer and its charge in the privacy ledger."""

    trainer: PrivateTrainer
    ledger: PrivacyLedger
    budget: float
    dataset: str
    run_id: str

    def finish(self) -> dict[str, Any]:
        """Charge what the run spent; the privacy part of the lineage."""
        t = self.trainer
        spent = t.privacy_lineage()
        self.ledger.charge(self.run_id, t.unit_keys, spent["epsilon"], spent["delta"],
                           self.dataset, "spent")  # fmt: skip
        worst = max((self.ledger.spent(u) for u in t.unit_keys), default=0.0)
        return {**spent, "budget_epsilon": self.budget, "max_user_epsilon_total": worst,
                "composition": "basic (sum of ε per user over rounds)"}  # fmt: skip


def _private_trainer(
    ws: Workspace, cfg: TrainConfig, args: tuple[Any, ...], records: list[Record],
    dataset: str, run_id: str,
) -> _Private:  # fmt: skip
    """A DP trainer over ``args`` (the Trainer's); refused when the round would take a user
    past the budget, else charged before the first step."""
    model, pad_id, rows, val_rows, settings, run_dir = args
    by_id = {r.id: r for r in records}
    units = [unit_of(by_id[row.record_ids[0]]) for row in rows]
    trainer = PrivateTrainer(model, pad_id, rows, val_rows, settings, run_dir, units)
    ledger = PrivacyLedger(ws.privacy_ledger_path)
    planned = trainer.plan.epsilon_at(settings.max_steps)
    budget = cfg.privacy.budget_epsilon if cfg.privacy else 0.0
    ledger.check(run_id, trainer.unit_keys, planned, budget)
    ledger.charge(run_id, trainer.unit_keys, planned, trainer.plan.settings.delta, dataset,
                  "reserved")  # fmt: skip
    return _Private(trainer, ledger, budget, dataset, run_id)


def _per_step(advance: Advance) -> Any:
    """The trainer's per-step callback, as progress: steps done (a resumed run starts ahead)."""
    done = 0

    def update(info: dict[str, Any]) -> None:
        nonlocal done
        advance(info["step"] - done, loss=f"{info['loss']:.4f}")
        done = info["step"]

    return update


@dataclass
class _Prepared:
    """Everything a run needs, built from the workspace: the trainer and what its lineage says."""

    trainer: Trainer
    private: _Private | None
    version: str
    base_ref: str
    info: BaseModelInfo
    settings: TrainSettings
    warm: WarmStart
    round_records: list[Record]
    train_records: list[Record]
    val_records: list[Record]
    replay_version: str | None
    rehearsed: list[Record]
    rehearsal: Rehearsal | None
    rows: int
    run_id: str
    run_dir: Path


def _prepare(ws: Workspace, dataset: str | None, base: str | None, max_steps: int | None,
             estimate: bool = False) -> _Prepared:  # fmt: skip
    """Load the dataset and the model and build the trainer (``estimate``: never a private one,
    which would charge the privacy ledger)."""
    import torch  # noqa: PLC0415 - heavy (torch)

    cfg = ws.config.train
    init_distributed()
    store = DatasetStore(ws.datasets_dir)
    version = dataset or store.latest()
    if version is None:
        raise WorkspaceError("no dataset version yet; run `tuneloop curate` first")
    version = store.resolve(version)
    records = store.load(version, split="train")
    if not records:  # before the model loads and the warm start fetches an adapter for nothing
        raise WorkspaceError(
            f"dataset {version} has no training records (everything was dropped or held out; "
            f"see `tuneloop datasets show {version}`); ingest more data and curate again"
        )
    settings = settings_from(cfg, max_steps)
    if estimate and settings.privacy is not None:
        raise WorkspaceError(
            "--dry-run does not estimate private runs (a measured step would spend privacy "
            "budget); estimate with [train.privacy] removed"
        )
    base_ref = base or cfg.base
    with progress_task(f"loading the base model {base_ref}"):
        model, tokenizer, info = load_base(base_folder(base_ref), cfg.revision)
    warm = _warm(ws, cfg, info, model, settings)
    round_records = _round_records(store, version, records, cfg, warm)
    train_records, replay_version = _mix_replay(ws, cfg, version, round_records)
    rehearsed, rehearsal = _rehearse(cfg, model, tokenizer, info, len(round_records))
    if cfg.rehearsal == "sft":
        train_records = train_records + rehearsed
    val_records = store.load(version, split="validation")
    run_id = run_id_for(version, replay_version, info, settings, warm.adapter_sha256,
                        rehearsal.sha256 if rehearsal else None, cfg.rounds)  # fmt: skip
    run_dir = ws.run_dir(run_id)
    torch.manual_seed(settings.seed)
    memory.steady_allocator()
    model = with_lora(model, settings.lora)
    if cfg.gradient_checkpointing and settings.privacy is None:
        enable_checkpointing(model)
    if warm.folder is not None:
        load_into(model, warm.folder)
    train_ex = tokenize(train_records, tokenizer, settings.max_len).examples
    if not train_ex:
        raise WorkspaceError(
            f"none of the {len(train_records)} training records of {version} has an answer token "
            f"within train.max_len = {settings.max_len} tokens (a system prompt and the question "
            "come first); raise train.max_len"
        )
    val_ex = tokenize(val_records, tokenizer, settings.max_len).examples
    rows = pack(train_ex, settings.block_size) if settings.packing else single_rows(train_ex)
    kl_records = rehearsed if cfg.rehearsal == "kl" else []
    distill = tokenize(kl_records, tokenizer, settings.max_len).examples
    distill_rows = pack(distill, settings.block_size) if settings.packing else single_rows(distill)
    private = None
    if settings.privacy is not None:
        args = (model, tokenizer.pad_token_id, rows, single_rows(val_ex), settings, run_dir)
        private = _private_trainer(ws, cfg, args, train_records, version, run_id)
        trainer: Trainer = private.trainer
    else:
        trainer = Trainer(model, tokenizer.pad_token_id, rows, single_rows(val_ex), settings,
                          run_dir, distill_rows=distill_rows)  # fmt: skip
    return _Prepared(trainer, private, version, base_ref, info, settings, warm, round_records,
                     train_records, val_records, replay_version, rehearsed, rehearsal, len(rows),
                     run_id, run_dir)  # fmt: skip


def estimate(
    ws: Workspace, dataset: str | None = None, base: str | None = None,
    max_steps: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """``train --dry-run``: the run's expected time from two measured steps (the first one a
    warm-up) and one validation micro-batch, and the memory they took. Writes no run, checkpoint
    or model version."""
    prepared = _prepare(ws, dataset, base, max_steps, estimate=True)
    with progress_task("measuring two training steps"):
        found = prepared.trainer.estimate()
    return {"dataset_version": prepared.version, "train_rows": prepared.rows, **found}


def train(
    ws: Workspace,
    dataset: str | None = None,
    base: str | None = None,
    max_steps: int | None = None,
    resume: bool = False,
    progress: Any = None,
) -> TrainReport:
    """Train one LoRA adapter on a dataset version; write it with its lineage."""
    cfg = ws.config.train
    p = _prepare(ws, dataset, base, max_steps)
    trainer, settings = p.trainer, p.settings
    with progress_task("training", settings.max_steps, "steps") as advance:
        result = trainer.run(resume=resume, progress=progress or _per_step(advance))
    if trainer.is_main:
        _buffer(ws, cfg).add_round(p.round_records, p.version)
    lineage = {
        "base": {**p.info.to_dict(), "ref": p.base_ref},
        "dataset_version": p.version,
        "replay_version": p.replay_version,
        "replay_ratio": cfg.replay_ratio,
        "hyperparameters": settings.to_dict(),
        "libraries": library_versions(),
        "code_version": code_version(),
        "run_id": p.run_id,
        "init_from": p.warm.lineage(),
        "rehearsal": p.rehearsal.lineage(len(p.rehearsed)) if p.rehearsal else None,
        "rounds": cfg.rounds,
        "records": {
            "round": len(p.round_records),
            "train": len(p.train_records),
            "validation": len(p.val_records),
            "train_rows": p.rows,
        },
    }
    privacy = p.private.finish() if p.private is not None else None
    if privacy is not None:
        lineage["privacy"] = privacy
    if trainer.is_main:
        (p.run_dir / RUN_LINEAGE).write_text(json.dumps(lineage, indent=1, default=str))
    summary = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(result).items()}
    registered = None
    if trainer.is_main:
        metrics = {"best_eval_loss": result.best_eval_loss} if result.best_eval_loss else None
        if privacy is not None:
            metrics = {**(metrics or {}), "privacy_epsilon": float(privacy["epsilon"])}
        registered = register_run(ws, p.run_dir, metrics).version
    return TrainReport(
        registered, p.run_id, str(p.run_dir), str(result.adapter_dir),
        folder_sha256(result.adapter_dir), lineage, summary,
    )  # fmt: skip


__all__ = ["TrainReport", "TrainResult", "estimate", "train"]
