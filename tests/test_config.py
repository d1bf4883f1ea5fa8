"""tuneloop.toml: defaults load, and every error is reported at once with its key."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from tuneloop.config import TuneloopConfig, load_config, parse_config
from tuneloop.config_file import default_toml, render
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


def _every_field(model: type[BaseModel]) -> Iterator[tuple[str, FieldInfo]]:
    for name, info in model.model_fields.items():
        yield name, info
        for arg in (info.annotation, *typing.get_args(info.annotation)):
            inner = typing.get_args(arg)[-1] if typing.get_origin(arg) is dict else arg
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                yield from _every_field(inner)


def test_every_setting_says_what_it_does() -> None:
    """The file a workspace starts from is rendered from these: a field without a description
    would be a key nobody can read about (sections say it in their docstrings)."""
    missing = [
        name
        for name, info in _every_field(TuneloopConfig)
        if not info.description
        and not (isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel))
    ]
    assert missing == []


def test_a_rendered_config_parses_back_to_itself(tmp_path: Path) -> None:
    """Not only the defaults: keys, privacy, optional and table settings are written live."""
    changed = TuneloopConfig.model_validate({
        "name": "bank", "curate": {"min_rating": 3, "quality": {"min_words": 5}},
        "train": {"max_steps": 7, "target_modules": ["q_proj"],
                  "privacy": {"epsilon": 4.0, "budget_epsilon": 8.0}},
        "evaluate": {"user_suites": {"legal": "legal.jsonl"}},
        "gate": {"metric_tolerances": {"loss": 0.2}},
        "serve": {"api_keys": {"app": {"sha256": "a" * 64, "max_tokens": 64}}},
    })  # fmt: skip
    for config in (TuneloopConfig(), changed):
        text = render(config)
        assert parse_config(text, tmp_path / "tuneloop.toml") == config
        assert max(len(line) for line in text.splitlines()) <= 100


def test_settings_that_are_off_are_shown_commented_out() -> None:
    text = default_toml("x")
    for line in (
        "# [train.privacy]",
        "# epsilon = 8.0",
        "# [serve.api_keys.app]",
        '# vllm_url = "http://127.0.0.1:8100"',
        "# metric_tolerances = {loss = 0.1}",
    ):
        assert line in text, line
