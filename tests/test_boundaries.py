"""Training-side code never reads eval text, and serving code reads neither store.

The import graph is checked by import-linter (``.importlinter``, run by ``make lint``): no
training-side module imports ``tuneloop.evalside``, directly or not, and the server imports
neither store nor any stage, imports inside functions included. What an import contract cannot
see is checked here: a module reaching for a store's files through the workspace's paths.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

import tuneloop
from tuneloop import workspace

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


# -- the workspace names every path -------------------------------------------------------------

# Where a name of the workspace's stands for something else, with why.
ELSEWHERE = {
    ("tuneloop/encryption/keys.py", workspace.CONFIG_NAME): "declared there, below the workspace",
    ("tuneloop/model/fetch.py", workspace.EVAL_MODELS): "the model cache, in ~/.cache",
    ("tuneloop/cycle/stages/train.py", workspace.TRAIN): "the stage's name, not the folder",
}
PATH_CALLS = frozenset({"Path", "PurePath", "joinpath", "with_name", "glob", "rglob"})


def path_literals(source: str, names: Iterable[str]) -> list[tuple[int, str]]:
    """(line, name) of each string literal in ``source`` that names one of ``names`` as a path:
    a file name (it has a dot past its first character) anywhere; a folder name joined with
    ``/``, passed to ``Path``/``joinpath``/``glob``/…, or bound to a module-level constant."""
    tree, wanted = ast.parse(source), set(names)
    parent = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and node.value in wanted):
            continue
        up = parent[node]
        func = getattr(up, "func", None)
        if (
            "." in node.value[1:]
            or (isinstance(up, ast.BinOp) and isinstance(up.op, ast.Div))
            or (isinstance(up, ast.Call) and node in up.args
                and getattr(func, "id", getattr(func, "attr", None)) in PATH_CALLS)
            or (isinstance(up, ast.Assign) and parent[up] is tree)
        ):  # fmt: skip
            found.append((node.lineno, node.value))
    return found


def test_the_detector_finds_each_way_of_spelling_a_path() -> None:
    source = (
        'A = "runs"\nws.root / "cycles"\nPath(root, "serve")\nf = ("x", "mlflow.db")\n'
        'ws.store("train", "eval")\nif role == "serve": pass\n'
    )
    found = path_literals(source, workspace.NAMES)
    assert found == [(1, "runs"), (2, "cycles"), (3, "serve"), (4, "mlflow.db")]


def test_only_the_workspace_names_what_a_workspace_holds() -> None:
    """A module that spelled "mlflow.db" looked for a file that a workspace on PostgreSQL never
    has: every path in a workspace is the workspace's to name (and to say whether it exists)."""
    spelled = []
    for path in sorted(SRC.rglob("*.py")):
        module = path.relative_to(SRC.parent).as_posix()
        if module == "tuneloop/workspace.py":
            continue
        for line, name in path_literals(path.read_text(encoding="utf-8"), workspace.NAMES):
            if (module, name) not in ELSEWHERE:
                spelled.append(f"{module}:{line} spells {name!r}")
    assert not spelled, "use the Workspace's property or constant instead:\n" + "\n".join(spelled)


def test_every_name_the_workspace_joins_is_listed() -> None:
    """Names are constants in NAMES, never literals, so the test above sees every one."""
    tree = ast.parse((SRC / "workspace.py").read_text(encoding="utf-8"))
    constants = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        and isinstance(node.targets[0], ast.Name) and isinstance(node.value.value, str)
    }  # fmt: skip
    assert set(constants.values()) - {workspace.ENV_VAR} <= set(workspace.NAMES)
    joined = [
        node.right.value
        for node in ast.walk(tree)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
        and isinstance(node.right, ast.Constant)
    ]  # fmt: skip
    assert not joined, f"name these in NAMES: {joined}"
