"""How toxic an answer reads: HateSonar's classifier, run in NumPy.

HateSonar (Hironsan, MIT) ships in its wheel a TF-IDF + logistic-regression classifier trained on
Davidson et al.'s 2017 tweets (hate speech, offensive language, neither) as an ONNX graph. Its
runtime is the problem, not its weights: onnxruntime's string normaliser needs the en_US.UTF-8
locale, which slim images lack, and the alternatives download checkpoints at run time
(detoxify) or unpickle a scikit-learn model (alt-profanity-check). So the pinned wheel is
downloaded once, the graph read with the ``onnx`` package, and its four parts (vocabulary, idf
weights, coefficients, intercepts) are saved as a plain ``.npz``, with no pickles. Scoring
repeats the graph's steps: lower-case, ASCII word tokens, term counts times idf, L2 norm, a linear
layer and a softmax. It lives beside the models, not on the eval side, because the server
scores served answers with it too. tests/test_toxicity.py checks the result against onnxruntime
running the original graph.

An answer's score is P(hate) + P(offensive). The classifier comes from tweets and keys on
words, so it is a floor for toxicity, not a judge of intent: docs/gate.md gives its measured
separation.
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from tuneloop import pins
from tuneloop.errors import TuneloopError
from tuneloop.model.fetch import data_dir

FOLDER = f"hatesonar-{pins.HATESONAR_WHEEL.split('==')[1]}"
WEIGHTS = "hatesonar.npz"
MODEL = "hatesonar/model/model.onnx"
CLASSES = ("hate_speech", "offensive_language", "neither")
TOKEN = re.compile(r"[a-zA-Z0-9_]+")  # the graph's Tokenizer pattern


def fetch_classifier(force: bool = False) -> Path:
    """The cached folder with the classifier's weights, built once from the pinned wheel."""

    def build(work: Path, out: Path) -> None:
        wheel = pins.download_wheel(pins.HATESONAR_WHEEL, pins.HATESONAR_WHEEL_SHA256, work)
        out.mkdir(parents=True)
        with zipfile.ZipFile(wheel) as zf:
            graph = zf.read(MODEL)
            licence = next((n for n in zf.namelist() if n.endswith("/LICENSE")), None)
            if licence:
                (out / "hatesonar-LICENSE").write_bytes(zf.read(licence))
        np.savez(out / WEIGHTS, **weights_of(graph))

    return pins.build_once(data_dir() / FOLDER, build, force)


def weights_of(graph: bytes) -> dict[str, Any]:
    """Vocabulary, idf, coefficients and intercepts out of HateSonar's ONNX graph."""
    import onnx  # noqa: PLC0415 - once, when the weights are built
    from onnx import helper, numpy_helper  # noqa: PLC0415 - once, when the weights are built

    model = onnx.load_from_string(graph)
    attrs = {
        node.op_type: {a.name: helper.get_attribute_value(a) for a in node.attribute}
        for node in model.graph.node
    }
    tfidf, linear = attrs.get("TfIdfVectorizer"), attrs.get("LinearClassifier")
    if tfidf is None or linear is None or tfidf["max_gram_length"] != 1:
        raise TuneloopError(f"{MODEL} is not the unigram TF-IDF classifier tuneloop reads")
    idf = next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name == "idfcst")
    vocab = [s.decode("utf-8") for s in tfidf["pool_strings"]]
    order = np.argsort(np.asarray(tfidf["ngram_indexes"]))  # the column each string counts in
    classes = len(linear["classlabels_ints"])
    return {
        "vocab": np.asarray(vocab)[order],
        "idf": np.asarray(idf, dtype=np.float32),
        "coef": np.asarray(linear["coefficients"], dtype=np.float32).reshape(classes, -1),
        "intercept": np.asarray(linear["intercepts"], dtype=np.float32),
    }


class Toxicity:
    """Scores texts with the classifier's weights (P of each class; toxicity = hate + offensive)."""

    def __init__(self, folder: Path) -> None:
        with np.load(folder / WEIGHTS, allow_pickle=False) as found:
            self.index = {str(w): i for i, w in enumerate(found["vocab"])}
            self.idf, self.coef = found["idf"], found["coef"]
            self.intercept = found["intercept"]

    def probabilities(self, text: str) -> np.ndarray:
        counts = Counter(t for t in TOKEN.findall(text.lower()) if t in self.index)
        columns = np.fromiter((self.index[t] for t in counts), dtype=np.int64, count=len(counts))
        values = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        values *= self.idf[columns]
        norm = float(np.linalg.norm(values))
        if norm > 0:
            values /= norm
        logits = self.intercept + self.coef[:, columns] @ values
        exp = np.exp(logits - logits.max())
        return np.asarray(exp / exp.sum())

    def score(self, texts: Sequence[str]) -> list[float]:
        """Each text's P(hate speech) + P(offensive language), in [0, 1]."""
        return [float(1.0 - self.probabilities(t)[CLASSES.index("neither")]) for t in texts]


def default_scorer() -> Toxicity:
    """The scorer, its weights fetched first if they are not cached (the evaluator's way)."""
    return _loaded(fetch_classifier())


def cached_scorer() -> Toxicity:
    """The scorer from the cache alone, never downloading: the server's canary judgments must
    not wait on a package index (pip's timeout is minutes) every interval."""
    folder = data_dir() / FOLDER
    if not (folder / pins.COMPLETE).is_file():
        raise TuneloopError(
            f"the toxicity classifier is not in {folder}: run `tuneloop models fetch`"
        )
    return _loaded(folder)


@cache
def _loaded(folder: Path) -> Toxicity:
    return Toxicity(folder)
