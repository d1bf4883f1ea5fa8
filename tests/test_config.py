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


def test_settings_set_by_name_keep_the_file_and_its_comments(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws", "w")
    before = ws.config_path.read_text(encoding="utf-8")
    ws = ws.configure({
        "train.max_steps": 16,
        "serve.canary.min_requests": 40,
        "gate.metric_tolerances": {"loss": 0.5},
        "curate.system_prompt": "You are the bank's assistant.",
    })  # fmt: skip
    cfg = ws.config
    assert cfg.train.max_steps == 16 and cfg.serve.canary.min_requests == 40
    assert cfg.gate.metric_tolerances == {"loss": 0.5}
    assert cfg.curate.system_prompt == "You are the bank's assistant."
    after = ws.config_path.read_text(encoding="utf-8")
    # every other line, comments included, is where it was
    kept = [line for line in before.splitlines() if "max_steps" not in line]
    kept = [line for line in kept if "min_requests" not in line]
    assert all(line in after.splitlines() for line in kept)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"train.max_stepz": 1}, "'train.max_stepz' is no setting; train has "),
        ({"nope": 1}, "'nope' is no setting; the top level has "),
        ({"train.max_steps.x": 1}, "train.max_steps is a value, not a section"),
        ({"train.max_steps": 0}, "train.max_steps: Input should be greater than or equal to 1"),
    ],
)
def test_a_wrong_setting_is_one_line_and_nothing_is_written(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    ws = init_workspace(tmp_path / "ws", "w")
    before = ws.config_path.read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")) as err:
        ws.configure(changes)
    assert "\n" not in str(err.value)
    assert ws.config_path.read_text(encoding="utf-8") == before
