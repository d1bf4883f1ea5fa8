"""The sha256 manifest of an adapter folder: recorded at registration, verified at download."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from tuneloop.errors import TuneloopError, WorkspaceError

# Adapters are safetensors plus small text files (PEFT writes README.md; tokenizers add .jinja).
# Anything else, above all pickle (.bin, .pt, .pkl), is refused at registration.
MANIFEST_TAG, SHA_TAG = "adapter_manifest", "adapter_sha256"  # version tags
ALLOWED_SUFFIXES = frozenset({".safetensors", ".json", ".txt", ".md", ".jinja"})


class AdapterIntegrityError(TuneloopError):
    """Downloaded adapter files do not match the sha256 manifest recorded at registration."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_manifest(folder: Path) -> dict[str, str]:
    """{relative posix path: sha256} for every file; refuses links and unexpected file types."""
    if not folder.is_dir():
        raise WorkspaceError(f"{folder}: adapter folder not found; pass the folder training wrote")
    manifest: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            raise WorkspaceError(f"{path}: symlinks are not registered; copy the file in")
        if path.is_dir():
            continue
        if path.suffix not in ALLOWED_SUFFIXES:
            raise WorkspaceError(
                f"{path}: {path.suffix or 'no suffix'} is not an adapter file; "
                f"only {', '.join(sorted(ALLOWED_SUFFIXES))} are registered (never pickle)"
            )
        manifest[rel] = file_sha256(path)
    if not manifest:
        raise WorkspaceError(f"{folder}: adapter folder is empty")
    return manifest


def combined_sha256(manifest: Mapping[str, str]) -> str:
    """One hash for the whole adapter: sha256 over sorted "path NUL sha256 LF" lines."""
    lines = "".join(f"{rel}\0{sha}\n" for rel, sha in sorted(manifest.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def verify_manifest(folder: Path, manifest: Mapping[str, str]) -> None:
    """Raise AdapterIntegrityError naming the first missing, extra or changed file."""
    for rel, expected in sorted(manifest.items()):
        path = folder / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise AdapterIntegrityError(f"{rel}: manifest path escapes the adapter folder")
        if not path.is_file() or path.is_symlink():
            raise AdapterIntegrityError(f"{rel}: missing from the downloaded adapter (tampered?)")
        if file_sha256(path) != expected:
            raise AdapterIntegrityError(
                f"{rel}: sha256 differs from the registered manifest; the adapter was "
                "tampered with or corrupted, do not serve it"
            )
    extra = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if not p.is_dir() and p.relative_to(folder).as_posix() not in manifest
    )
    if extra:
        raise AdapterIntegrityError(f"{extra[0]}: file not in the registered manifest (tampered?)")
