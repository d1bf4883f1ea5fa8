"""Training-side code never reads eval text, and serving code reads neither store.

The import graph is checked by import-linter (``.importlinter``, run by ``make lint``): no
training-side module imports ``tuneloop.evalside``, directly or not, and the server imports
neither store nor any stage, imports inside functions included. What an import contract cannot
see is checked here: a module reaching for a store's files through the workspace's paths.
"""

from __future__ import annotations

import ast
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
    "tuneloop.train",
)
SERVING_MAY_NOT_LOAD = ("tuneloop.evalside", "tuneloop.trainstore", "tuneloop.flows")
SRC = Path(tuneloop.__file__).parent


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


def imported_modules(tree: ast.AST) -> set[str]:
    """Every module an ``import`` or ``from ... import`` in ``tree`` names, dotted."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            parent = node.module or ""
            found.add(parent)
            found |= {f"{parent}.{alias.name}".lstrip(".") for alias in node.names}
    return found


def test_no_test_file_imports_a_test_module() -> None:
    """What tests share lives in tests/support: a test module imported by another ties the two
    files together (one's fixtures and state in the other's process, one renamed and the other
    broken), and a test file must run alone and in any order."""
    tests = Path(__file__).parent
    for path in tests.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for module in imported_modules(tree):
            assert not any(part.startswith("test_") for part in module.split(".")), (
                f"{path.relative_to(tests)} imports {module}: move what it needs to tests/support"
            )
