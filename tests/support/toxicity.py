"""A classifier of HateSonar's shape on a few words, as the toxicity scorer's cached weights, so
that no test downloads the hatesonar wheel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

from tuneloop import pins
from tuneloop.model import toxicity

# Each word's pull towards (hate speech, offensive language, neither).
WORDS = {
    "idiot": (0.0, 4.0, -2.0), "stupid": (0.0, 4.0, -2.0), "hate": (4.0, 1.0, -2.0),
    "hello": (-2.0, -2.0, 4.0), "thanks": (-2.0, -2.0, 4.0), "python": (-1.0, -1.0, 2.0),
    "you": (0.0, 0.5, 0.0), "kill": (1.0, 1.0, 0.0),
}  # fmt: skip
VOCAB = list(WORDS)
TEXTS = [
    "You stupid idiot, I hate you!",
    "Hello, and thanks for asking.",
    "How do I kill a Python process? KILL it with -9.",
    "",
    "nothing here matches",
    "idiot idiot idiot thanks",
]


def hatesonar_like_graph(seed: int = 0) -> bytes:
    """A graph of HateSonar's shape (skl2onnx's TF-IDF + logistic regression) on a small
    vocabulary, its columns in a shuffled order as a real pool's can be."""
    rng = np.random.default_rng(seed)
    n = len(VOCAB)
    columns = rng.permutation(n).tolist()
    coef = np.zeros((3, n), dtype=np.float32)
    for k, word in enumerate(VOCAB):  # a word's weights sit in its column, plus a little noise
        coef[:, columns[k]] = np.asarray(WORDS[word]) + rng.normal(0, 0.1, 3)
    idf = rng.uniform(1, 5, n).astype(np.float32)
    nodes = [
        helper.make_node("Reshape", ["text", "shape"], ["flat"]),
        helper.make_node(
            "StringNormalizer",
            ["flat"],
            ["lower"],
            case_change_action="LOWER",
            is_case_sensitive=0,
            locale="C.UTF-8",
        ),
        helper.make_node(
            "Tokenizer",
            ["lower"],
            ["tokens"],
            domain="com.microsoft",
            mark=0,
            mincharnum=1,
            pad_value="#",
            tokenexp="[a-zA-Z0-9_]+",
        ),
        helper.make_node("Flatten", ["tokens"], ["tokens1"]),
        helper.make_node(
            "TfIdfVectorizer",
            ["tokens1"],
            ["tf"],
            max_gram_length=1,
            max_skip_count=0,
            min_gram_length=1,
            mode="TF",
            ngram_counts=[0],
            ngram_indexes=columns,
            pool_strings=VOCAB,
            weights=[1.0] * n,
        ),
        helper.make_node("Mul", ["tf", "idfcst"], ["tfidf"]),
        helper.make_node("Normalizer", ["tfidf"], ["normed"], domain="ai.onnx.ml", norm="L2"),
        helper.make_node(
            "LinearClassifier",
            ["normed"],
            ["label", "probability"],
            domain="ai.onnx.ml",
            classlabels_ints=[0, 1, 2],
            coefficients=coef.flatten().tolist(),
            intercepts=[-1.0, 0.5, 1.0],
            multi_class=1,
            post_transform="SOFTMAX",
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "hatesonar-like",
        [helper.make_tensor_value_info("text", TensorProto.STRING, [None])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None, 3])],
        [
            helper.make_tensor("shape", TensorProto.INT64, [1], [-1]),
            helper.make_tensor("idfcst", TensorProto.FLOAT, [n], idf.tolist()),
        ],
    )
    opsets = [
        helper.make_opsetid("", 17),
        helper.make_opsetid("ai.onnx.ml", 3),
        helper.make_opsetid("com.microsoft", 1),
    ]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8).SerializeToString()


def write_weights(folder: Path) -> Path:
    """The folder fetch_classifier leaves, with this graph's weights."""
    folder.mkdir(parents=True)
    np.savez(folder / toxicity.WEIGHTS, **toxicity.weights_of(hatesonar_like_graph()))
    (folder / pins.COMPLETE).write_text("test\n")
    return folder
