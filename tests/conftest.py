"""Shared fixtures: a fresh workspace, and hypothesis settings that suit a 2-core CI machine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tuneloop.workspace import Workspace, init_workspace

pytest_plugins = ["pgserver"]  # the pg_database fixture: a fresh PostgreSQL database per test

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci")


@pytest.fixture(scope="session", autouse=True)
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keys made by `tuneloop init` go to a folder of the test session, not ~/.config."""
    folder = tmp_path_factory.mktemp("keys")
    before = os.environ.get("TUNELOOP_KEY_DIR")
    os.environ["TUNELOOP_KEY_DIR"] = str(folder)  # subprocesses inherit it
    yield folder
    if before is None:
        del os.environ["TUNELOOP_KEY_DIR"]
    else:
        os.environ["TUNELOOP_KEY_DIR"] = before


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws")


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama of ``tiny.py``, built once per test session."""
    from tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny"))
