"""Atomic, complete checkpoints: adapter, optimizer, scheduler, RNG and data position.

A checkpoint is written into a temporary folder, a ``COMPLETE`` marker is written last, and the
folder is renamed into place; resume takes the newest folder that has the marker, so a process
killed at any moment — even halfway through writing — resumes from the last whole checkpoint.
Everything is stored as safetensors and JSON: nothing is ever loaded with pickle.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# A checkpoint's folder, <checkpoints>/checkpoint-0000040/: its files, and the marker written last.
PREFIX = "checkpoint-"
ADAPTER_FILE = "adapter.safetensors"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_META = "optimizer.json"
SCHEDULER_FILE = "scheduler.json"
RNG_FILE = "rng.safetensors"
STATE_FILE = "trainer_state.json"
MARKER = "COMPLETE"


@dataclass
class TrainerState:
    """Where training is: enough to continue exactly."""

    step: int = 0
    epoch: int = 0
    cursor: int = 0  # next micro-batch within the epoch's order
    best_eval_loss: float | None = None
    best_step: int | None = None
    bad_evals: int = 0  # evaluations in a row without improvement (early stopping)
    tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _optimizer_tensors(optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split an optimizer state dict into tensors (safetensors) and the rest (JSON)."""
    import torch  # noqa: PLC0415 - heavy (torch)

    state = optimizer.state_dict()
    tensors: dict[str, Any] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = value.detach().clone().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer: Any, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for idx, values in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    root: Path,
    adapter: dict[str, Any],
    optimizer: Any,
    scheduler: Any,
    state: TrainerState,
    fail_after: str | None = None,
) -> Path:
    """Write a checkpoint atomically; ``fail_after`` names a file after which to stop (tests)."""
    import torch  # noqa: PLC0415 - heavy (torch)
    from safetensors.torch import save_file  # noqa: PLC0415 - heavy (torch)

    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    files: list[tuple[str, dict[str, Any] | str]] = [
        (ADAPTER_FILE, adapter),
        (OPTIMIZER_TENSORS, opt_tensors),
        (OPTIMIZER_META, json.dumps(opt_meta)),
        (SCHEDULER_FILE, json.dumps(_scheduler_state(scheduler))),
        (RNG_FILE, {"torch": torch.get_rng_state()}),
        (STATE_FILE, json.dumps(state.to_dict())),
    ]
    for name, content in files:
        if isinstance(content, str):
            (tmp / name).write_text(content, encoding="utf-8")
        else:
            save_file(content, str(tmp / name))
        if fail_after == name:
            raise KeyboardInterrupt(f"stopped after writing {name}")
    (tmp / MARKER).write_text("ok\n")
    final = root / f"{PREFIX}{state.step:07d}"
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return final


def _scheduler_state(scheduler: Any) -> dict[str, Any]:
    sd = scheduler.state_dict()
    return {k: v for k, v in sd.items() if k != "lr_lambdas"}


def complete_checkpoints(root: Path) -> list[Path]:
    """Finished checkpoints, oldest first (torn ones, without the marker, are ignored)."""
    if not root.exists():
        return []
    found = [p for p in root.glob(f"{PREFIX}*") if (p / MARKER).exists()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def remove_torn(root: Path) -> list[Path]:
    """Delete temporary folders left by an interrupted save; return what was removed."""
    if not root.exists():
        return []
    torn = list(root.glob(".tmp-*"))
    torn += [p for p in root.glob(f"{PREFIX}*") if not (p / MARKER).exists()]
    for path in torn:
        shutil.rmtree(path, ignore_errors=True)
    return torn


def prune(root: Path, keep: int) -> None:
    for path in complete_checkpoints(root)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def load_checkpoint(
    folder: Path, optimizer: Any, scheduler: Any
) -> tuple[dict[str, Any], TrainerState]:
    """Restore optimizer, scheduler and RNG in place; return the adapter weights and state."""
    import torch  # noqa: PLC0415 - heavy (torch)
    from safetensors.torch import load_file  # noqa: PLC0415 - heavy (torch)

    adapter = load_file(folder / ADAPTER_FILE)
    meta = json.loads((folder / OPTIMIZER_META).read_text())
    _restore_optimizer(optimizer, load_file(folder / OPTIMIZER_TENSORS), meta)
    sched = json.loads((folder / SCHEDULER_FILE).read_text())
    scheduler.load_state_dict({**scheduler.state_dict(), **sched})
    torch.set_rng_state(load_file(folder / RNG_FILE)["torch"])
    state = TrainerState(**json.loads((folder / STATE_FILE).read_text()))
    return adapter, state
