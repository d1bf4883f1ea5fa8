"""Training-side code never reads eval text: checked on the import graph.

Every module of the training side is imported in a fresh interpreter, and none of them may
pull in ``tuneloop.evalside`` (the only code that opens the eval store), directly or not.
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
SRC = Path(tuneloop.__file__).parent


def training_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages([str(SRC)], prefix="tuneloop."):
        if info.name.startswith(TRAINING_SIDE):
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("module", training_modules())
def test_training_module_does_not_load_the_eval_side(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "bad = sorted(m for m in sys.modules if m.startswith('tuneloop.evalside'))\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} loads {out.stdout.strip()}"


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
