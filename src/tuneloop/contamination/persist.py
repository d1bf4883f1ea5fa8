"""Saving and loading the contamination index: a versioned folder (see :mod:`tuneloop.workspace`).

A version folder is written under a temporary name and renamed into place, and CURRENT is
replaced atomically after it, so a reader sees either the old index or the new one, never a mix.
Arrays are stored in ``.npy`` form inside an ``.npz`` (no pickle), beside a ``meta.json``.

``FORMAT`` names what a version folder holds (``ADDED`` says what each format added). A folder
of another format is refused with :class:`StaleIndexError`, and the eval side rebuilds the
index from the eval store (it holds the text; the index only its hashes).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tuneloop.contamination.calibration import SuiteCalibration
from tuneloop.contamination.index import ContaminationIndex, IndexSettings, SortedKeys, Units
from tuneloop.errors import WorkspaceError
from tuneloop.workspace import current_version, set_current, versions_dir

ARRAYS_FILE = "index.npz"
META_FILE = "meta.json"
FORMAT = 3
ADDED = {
    2: "the prompt/answer containment units",
    3: "each item's suite and the semantic check's per-suite thresholds",
}


class StaleIndexError(WorkspaceError):
    """A persisted index written in an older format: rebuild it from the eval store."""


def _arrays(index: ContaminationIndex) -> dict[str, np.ndarray[Any, Any]]:
    arrays: dict[str, np.ndarray[Any, Any]] = {
        "exact_keys": index.exact.keys,
        "exact_items": index.exact.items,
        "set_values": index.set_values,
        "set_offsets": index.set_offsets,
        "gram_keys": index.grams.keys,
        "gram_items": index.grams.items,
        "gram_counts": index.gram_counts,
    }
    for b, band in enumerate(index.bands):
        arrays[f"band{b}_keys"], arrays[f"band{b}_items"] = band.keys, band.items
    for n, keys in index.canaries.items():
        arrays[f"canary{n}_keys"], arrays[f"canary{n}_items"] = keys.keys, keys.items
    if index.embeddings is not None:
        arrays["embeddings"] = index.embeddings
    if index.neighbours is not None:
        arrays["neighbours"] = index.neighbours
    arrays["item_suite"] = index.item_suite
    units = index.units
    arrays.update(
        unit_gram_keys=units.grams.keys,
        unit_gram_units=units.grams.items,
        unit_common=units.common,
        unit_items=units.items,
        unit_fields=units.fields,
        unit_seq=units.seq,
        unit_seq_off=units.seq_off,
        unit_words=units.words,
    )
    return arrays


def _units(arrays: dict[str, Any], settings: IndexSettings, n_items: int) -> Units:
    units = Units(
        grams=SortedKeys(arrays["unit_gram_keys"], arrays["unit_gram_units"]),
        common=arrays["unit_common"],
        items=arrays["unit_items"],
        fields=arrays["unit_fields"],
        seq=arrays["unit_seq"],
        seq_off=arrays["unit_seq_off"],
        words=arrays["unit_words"],
    )
    units.recount(settings, n_items)
    return units


def save_index(index: ContaminationIndex, root: Path) -> Path:
    """Write ``index`` as the current version under ``root``; return its folder."""
    folder = versions_dir(root) / index.version[:16]
    # The same version built otherwise (older format, other settings, embeddings added or
    # dropped) is replaced: else every load would find it stale and rebuild it again.
    stale = folder.exists() and _built(folder) != _built_as(index)
    if not folder.exists() or stale:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
        try:
            np.savez(tmp / ARRAYS_FILE, allow_pickle=False, **_arrays(index))
            meta = {
                "format": FORMAT,
                "version": index.version,
                "items": len(index),
                "settings": index.settings.model_dump(),
                "bands": len(index.bands),
                "canary_lengths": sorted(index.canaries),
                "item_ids": index.item_ids,
                "suites": index.suite_names,
                "semantic_calibration": {k: c.to_dict() for k, c in index.calibration.items()},
                "embeddings": index.embeddings is not None,
            }
            (tmp / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
            if stale:
                old = folder.rename(folder.with_name(f".stale-{folder.name}"))
                shutil.rmtree(old)
            tmp.rename(folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    set_current(root, index.version)
    return folder


def prune_versions(root: Path) -> int:
    """Remove every version but the current one (after an erasure, the older versions hold
    hashes of erased items); returns how many were removed."""
    current = current_version(root)
    folder = versions_dir(root)
    if current is None or not folder.is_dir():
        return 0
    old = [p for p in folder.iterdir() if p.is_dir() and p.name != current[:16]]
    for path in old:
        shutil.rmtree(path)
    return len(old)


def load_index(root: Path, version: str | None = None) -> ContaminationIndex:
    """Load the current (or the named) version of the index kept under ``root``."""
    version = version or current_version(root)
    if version is None:
        raise WorkspaceError(
            f"{root}: no contamination index yet; add eval items with `tuneloop evalset add`"
        )
    folder = versions_dir(root) / version[:16]
    meta = _meta(folder)
    raw = dict(meta["settings"])
    settings = IndexSettings(**{**raw, "canary_patterns": tuple(raw["canary_patterns"])})
    with np.load(folder / ARRAYS_FILE, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return ContaminationIndex(
        settings=settings,
        version=meta["version"],
        item_ids=list(meta["item_ids"]),
        exact=SortedKeys(arrays["exact_keys"], arrays["exact_items"]),
        bands=[
            SortedKeys(arrays[f"band{b}_keys"], arrays[f"band{b}_items"])
            for b in range(meta["bands"])
        ],
        set_values=arrays["set_values"],
        set_offsets=arrays["set_offsets"],
        grams=SortedKeys(arrays["gram_keys"], arrays["gram_items"]),
        gram_counts=arrays["gram_counts"],
        canaries={
            n: SortedKeys(arrays[f"canary{n}_keys"], arrays[f"canary{n}_items"])
            for n in meta["canary_lengths"]
        },
        embeddings=arrays.get("embeddings"),
        units=_units(arrays, settings, len(meta["item_ids"])),
        suite_names=list(meta["suites"]),
        item_suite=arrays["item_suite"],
        neighbours=arrays.get("neighbours"),
        calibration={k: SuiteCalibration(**c) for k, c in meta["semantic_calibration"].items()},
    )


def _built_as(index: ContaminationIndex) -> tuple[object, ...]:
    """What, beside the version, tells two builds apart."""
    settings = json.loads(json.dumps(index.settings.model_dump()))  # as meta.json has it
    return (FORMAT, settings, index.embeddings is not None)


def _built(folder: Path) -> tuple[object, ...] | None:
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (meta.get("format"), meta.get("settings"), meta.get("embeddings"))


def _meta(folder: Path) -> dict[str, Any]:
    """A version folder's meta.json, refused with :class:`StaleIndexError` if of another format."""
    meta: dict[str, Any] = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    found = meta.get("format")
    if found != FORMAT:
        lacks = [ADDED[k] for k in sorted(ADDED) if not isinstance(found, int) or found < k]
        raise StaleIndexError(
            f"{folder}: contamination index format {found} is not the current format {FORMAT}"
            f"{' (it lacks ' + ' and '.join(lacks) + ')' if lacks else ''}; it is rebuilt "
            "from the eval store by the next `tuneloop evalset add` or `tuneloop ingest`"
        )
    return meta


def read_calibration(root: Path) -> dict[str, SuiteCalibration] | None:
    """The current index's per-suite semantic calibration (from its meta.json alone), or None
    when there is no index, it holds no embeddings, or it is of another format."""
    version = current_version(root)
    if version is None:
        return None
    try:
        meta = _meta(versions_dir(root) / version[:16])
    except StaleIndexError:
        return None
    found = meta["semantic_calibration"]
    return {k: SuiteCalibration(**c) for k, c in found.items()} if found else None
