"""Saving and loading adapters as safetensors, with their sha256 (never pickle)."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

SHA_FILE = "SHA256.txt"  # the adapter's own sha256, beside its files


def folder_sha256(folder: Path) -> str:
    """One sha256 over every file of a folder (names and contents, in name order)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != SHA_FILE):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def save_adapter(model: Any, dest: Path) -> str:
    """Write the model's adapter (safetensors + config) atomically; return its sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        sha = folder_sha256(tmp)
        (tmp / SHA_FILE).write_text(sha + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sha


def adapter_weights(dest: Path) -> dict[str, Any]:
    from safetensors.torch import load_file  # noqa: PLC0415 - heavy (torch)

    return load_file(dest / "adapter_model.safetensors")
