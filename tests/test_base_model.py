"""A base model is named by a folder, a cached Hub id or the offline default."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneloop.errors import TuneloopError
from tuneloop.model.base import resolve
from tuneloop.model.fetch import DEFAULT_MODEL, MARKER


def test_an_unknown_model_names_what_this_machine_has_and_how_to_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "models" / DEFAULT_MODEL).mkdir(parents=True)
    (tmp_path / "models" / DEFAULT_MODEL / MARKER).write_text("converted\n")
    repo = tmp_path / "hub" / "models--acme--tiny-chat"
    (repo / "snapshots" / "0123abc").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    (repo / "blobs").mkdir()
    (repo / "blobs" / "f00d").write_text("{}")
    (repo / "snapshots" / "0123abc" / "config.json").symlink_to(repo / "blobs" / "f00d")
    monkeypatch.setenv("TUNELOOP_MODELS", str(tmp_path / "models"))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # no Hub: only what is cached
    with pytest.raises(TuneloopError) as raised:
        resolve("acme/no-such-model")
    message = str(raised.value)
    assert "\n" not in message
    assert f"models here: {DEFAULT_MODEL}, acme/tiny-chat;" in message
    assert "`tuneloop models fetch`" in message and "`hf download ID`" in message
