"""One site's round: the global adapter, a few local steps on the site's dataset version, and
the change of the trained tensors (clipped and noised when asked) as the only thing sent back.

Training is the project's own: the workspace's base model, :func:`with_lora`, the tokenizer's
completion-only labels and packing, and :class:`Trainer`. Under FFA the A factors are frozen
before the optimizer is built, so they stay the shared seed-initialised matrices. This module
never imports the eval side: a site checks its records against the aggregator's contamination
index (one-way hashes), never against eval text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from tuneloop.contamination.check import Checker, strongest
from tuneloop.contamination.persist import load_index
from tuneloop.datasets import DatasetStore
from tuneloop.errors import WorkspaceError
from tuneloop.federated.factors import A_MARK, Aggregation, Arrays, trained_keys
from tuneloop.federated.privacy import clip_and_noise
from tuneloop.federated.wire import RoundPlan, SiteReport
from tuneloop.gateway import time_window
from tuneloop.model.base import load_base
from tuneloop.model.fetch import base_folder
from tuneloop.records import Record
from tuneloop.train.data import pack, single_rows, tokenize
from tuneloop.train.loop import Trainer, TrainResult, TrainSettings
from tuneloop.train.lora import with_lora
from tuneloop.workspace import Workspace


@dataclass(frozen=True)
class SiteSpec:
    """Where a site's workspace is and which dataset version it trains on (fixed for a run)."""

    name: str
    root: str
    dataset_version: str


@dataclass(frozen=True)
class SiteUpdate:
    """What leaves the site after a round: the trained tensors' change and its lineage."""

    delta: Arrays
    examples: int
    train_loss: float
    val_loss: float  # NaN when the dataset version has no validation split
    norm: float  # the change's L2 norm before clipping
    report: SiteReport


def newest_window(records: list[Record]) -> str:
    """The newest week of the site's data: the aggregator's memorization probe cuts there."""
    weeks = [w for w in (time_window(r.created_at, "week") for r in records) if w]
    return max(weeks) if weeks else ""


@lru_cache(maxsize=8)
def contaminated(root: str, version: str, index_dir: str, index_version: str) -> int:
    """How many of the version's records match the aggregator's eval index (cached per run)."""
    index = load_index(Path(index_dir), index_version)
    records = DatasetStore(Workspace(Path(root)).datasets_dir).load(version)
    found = Checker(index).check_records(records)
    return sum(1 for matches in found if strongest(matches) is not None)


def set_global(
    model: Any, global_arrays: Mapping[str, np.ndarray[Any, Any]], aggregation: Aggregation
) -> None:
    """Load the global adapter into a LoRA model; under FFA freeze A (B alone trains)."""
    import torch  # noqa: PLC0415 - heavy (torch)
    from peft import set_peft_model_state_dict  # noqa: PLC0415 - heavy (peft)

    weights = {k: torch.from_numpy(v.copy()) for k, v in global_arrays.items()}
    set_peft_model_state_dict(model, weights)
    for name, param in model.named_parameters():
        if f".{A_MARK}." in name:
            param.requires_grad_(aggregation != "ffa")


def local_round(
    model: Any,
    pad_id: int,
    rows: tuple[list[Any], list[Any]],
    settings: TrainSettings,
    run_dir: Path,
    global_arrays: Mapping[str, np.ndarray[Any, Any]],
    aggregation: Aggregation,
) -> tuple[Arrays, TrainResult, float]:
    """Train from the global adapter with the project's Trainer; (change, result, mean loss)."""
    set_global(model, global_arrays, aggregation)
    losses: list[float] = []
    trainer = Trainer(
        model,
        pad_id,
        rows[0],
        rows[1],
        settings,
        run_dir,
        hook=lambda event, data: losses.append(data["loss"]) if event == "step" else None,
    )
    result = trainer.run()
    delta = delta_of(trainer.adapter_state(), global_arrays, aggregation)
    return delta, result, float(np.mean(losses))


def _rows(records: list[Record], tokenizer: Any, plan: RoundPlan, packed: bool) -> list[Any]:
    examples = tokenize(records, tokenizer, plan.settings.max_len).examples
    return pack(examples, plan.settings.block_size) if packed else single_rows(examples)


def delta_of(
    state: Mapping[str, Any],
    global_arrays: Mapping[str, np.ndarray[Any, Any]],
    aggregation: Aggregation,
) -> Arrays:
    """Local minus global for the tensors this aggregation trains."""
    keys = trained_keys(list(global_arrays), aggregation)
    return {k: state[k].float().numpy() - global_arrays[k] for k in keys}


def train_site(
    spec: SiteSpec,
    global_arrays: Mapping[str, np.ndarray[Any, Any]],
    plan: RoundPlan,
    server_round: int,
) -> SiteUpdate:
    """Run one round at the site; return what may leave it."""
    import torch  # noqa: PLC0415 - heavy (torch)

    ws = Workspace(Path(spec.root))
    store = DatasetStore(ws.datasets_dir)
    train, val = (store.load(spec.dataset_version, split=s) for s in ("train", "validation"))
    model, tokenizer, info = load_base(base_folder(ws.config.train.base), ws.config.train.revision)
    if info.weights_sha256 != plan.base_sha256:
        raise WorkspaceError(
            f"site {spec.name}: its base model ({ws.config.train.base}) is not the aggregator's "
            f"(weights sha256 {info.weights_sha256[:12]} vs {plan.base_sha256[:12]}); "
            "set the same [train] base in every workspace"
        )
    settings = plan.settings.model_copy(update={"seed": plan.settings.seed + server_round})
    torch.manual_seed(settings.seed)
    model = with_lora(model, settings.lora)
    rows = (_rows(train, tokenizer, plan, settings.packing), _rows(val, tokenizer, plan, False))
    run_dir = ws.federated_round_dir(plan.run_id, server_round)
    delta, result, loss = local_round(
        model, tokenizer.pad_token_id, rows, settings, run_dir, global_arrays, plan.aggregation
    )
    sent, norm = clip_and_noise(delta, plan.privacy)
    report = SiteReport(
        spec.name,
        spec.dataset_version,
        len(train),
        len(val),
        newest_window(train + val),
        contaminated(spec.root, spec.dataset_version, plan.index_dir, plan.index_version),
        info.weights_sha256,
    )
    val_loss = result.final_eval_loss if result.final_eval_loss is not None else math.nan
    return SiteUpdate(sent, len(train), loss, val_loss, norm, report)
