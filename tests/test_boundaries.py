"""Training-side code never reads eval text, and serving code reads neither store.

Checked on the import graph: every module of the training side is imported in a fresh
interpreter, and none of them may pull in ``tuneloop.evalside`` (the only code that opens the
eval store), directly or not. The serving package may pull in neither the eval side nor the
training store nor the flows (the only modules that open both).
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import tuneloop

TRAINING_SIDE = (
    "tuneloop.records",
    "tuneloop.gateway",
    "tuneloop.trainstore",
    "tuneloop.datasets",
    "tuneloop.curate",
    "tuneloop.contamination",
    "tuneloop.minhash",
    "tuneloop.tools",
)
SERVING_SIDE = ("tuneloop.serve",)
SERVING_MAY_NOT_LOAD = ("tuneloop.evalside", "tuneloop.trainstore", "tuneloop.flows")
SRC = Path(tuneloop.__file__).parent


def modules_of(side: tuple[str, ...]) -> list[str]:
    names = []
    for info in pkgutil.walk_packages([str(SRC)], prefix="tuneloop."):
        if info.name.startswith(side):
            names.append(info.name)
    return sorted(names)


def loaded_by(module: str, forbidden: tuple[str, ...]) -> str:
    code = (
        f"import sys, {module}\n"
        f"bad = sorted(m for m in sys.modules if m.startswith({forbidden!r}))\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("module", modules_of(TRAINING_SIDE))
def test_training_module_does_not_load_the_eval_side(module: str) -> None:
    assert loaded_by(module, ("tuneloop.evalside",)) == "", module


@pytest.mark.parametrize("module", modules_of(SERVING_SIDE))
def test_serving_module_loads_neither_store(module: str) -> None:
    assert loaded_by(module, SERVING_MAY_NOT_LOAD) == "", module


def test_no_training_source_mentions_the_eval_store() -> None:
    for path in SRC.rglob("*.py"):
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        if not module.startswith(TRAINING_SIDE):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("tuneloop.evalside"), f"{module} imports it"
            if isinstance(node, ast.Import):
                assert all(not a.name.startswith("tuneloop.evalside") for a in node.names)
            if isinstance(node, ast.Attribute) and node.attr in {"eval_store_path", "eval_dir"}:
                pytest.fail(f"{module} touches the eval side's files ({node.attr})")


def test_no_serving_source_touches_either_store() -> None:
    for path in (SRC / "serve").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(SERVING_MAY_NOT_LOAD), f"{path} imports it"
            touched = {"eval_store_path", "eval_dir", "train_store_path", "train_dir"}
            if isinstance(node, ast.Attribute) and node.attr in touched:
                pytest.fail(f"{path} touches a store's files ({node.attr})")
