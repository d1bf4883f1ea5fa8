"""tuneloop.toml: defaults load, and every error is reported at once with its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneloop.config import TuneloopConfig, default_toml, load_config
from tuneloop.errors import ConfigError, WorkspaceError
from tuneloop.workspace import find_workspace, init_workspace


def test_default_file_is_the_default_config(tmp_path: Path) -> None:
    path = tmp_path / "tuneloop.toml"
    path.write_text(default_toml("tuneloop"))
    assert load_config(path) == TuneloopConfig()


def test_all_errors_at_once(tmp_path: Path) -> None:
    path = tmp_path / "tuneloop.toml"
    path.write_text("[gateway]\neval_fraction = 2.0\nbogus = 1\n[curate]\npii_mode = 'shout'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    for key in ("gateway.eval_fraction", "gateway.bogus", "curate.pii_mode"):
        assert key in message


def test_bad_toml_syntax(tmp_path: Path) -> None:
    path = tmp_path / "tuneloop.toml"
    path.write_text("[gateway\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_workspace_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = init_workspace(tmp_path / "ws")
    deep = ws.root / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.delenv("TUNELOOP_WORKSPACE", raising=False)
    assert find_workspace(start=deep).root == ws.root
    monkeypatch.setenv("TUNELOOP_WORKSPACE", str(ws.root))
    assert find_workspace(start=tmp_path).root == ws.root
    monkeypatch.delenv("TUNELOOP_WORKSPACE")
    with pytest.raises(WorkspaceError, match="tuneloop init"):
        find_workspace(start=tmp_path)
