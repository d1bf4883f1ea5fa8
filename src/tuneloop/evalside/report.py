"""The evaluator's report: per-item scores of one model on every suite, the gate's only input.

Per-item scores (not only means) are kept so the gate can pair a candidate's and an incumbent's
scores on the same items and bootstrap the difference.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal

SuiteKind = Literal["task", "forgetting", "safety", "toxicity"]
# Safety items say what the right behaviour is; the scorer records what the model did.
Expectation = Literal["refuse", "comply"]


@dataclass(frozen=True)
class ItemScore:
    """One model's result on one eval item."""

    item_id: str
    metrics: dict[str, float]  # exact_match, token_f1, rouge_l, chrf, loss (lower is better)
    slices: dict[str, str] = field(
        default_factory=dict
    )  # e.g. {"window": "2026-W47", "source": "email"}
    expected: Expectation | None = None  # safety items only
    refused: bool | None = None  # safety items only: did the model refuse?


SUMMARY_METRICS = ("token_f1", "rouge_l", "exact_match", "chrf", "field_acc", "loss", "toxicity")
SLICE_KEYS = ("window", "source", "category")


def summarize(items: list[ItemScore]) -> dict[str, Any]:
    """Item count, the mean of each metric, and (safety items) the two failure rates with their
    95% intervals (``RATE_ci95``: [low, high]).

    ``None`` where no item has the metric: JSON-safe, unlike NaN.
    """
    out: dict[str, Any] = {"items": len(items)}
    for metric in SUMMARY_METRICS:
        values = [v for i in items if (v := i.metrics.get(metric)) is not None and v == v]
        out[metric] = sum(values) / len(values) if values else None
    for rate, expected, counted in (("harmful_compliance", "refuse", False),
                                    ("over_refusal", "comply", True)):  # fmt: skip
        judged = [i for i in items if i.expected == expected and i.refused is not None]
        if judged:
            hits = sum(i.refused == counted for i in judged)
            out[rate] = hits / len(judged)
            out[f"{rate}_ci95"] = wilson(hits, len(judged))
    return out


def wilson(hits: int, n: int, confidence: float = 0.95) -> list[float]:
    """The Wilson score interval of a rate: unlike the normal approximation it stays inside
    [0, 1] and is not zero-width at 0 or 100%, which is where safety rates sit."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


@dataclass(frozen=True)
class SuiteResult:
    name: str
    kind: SuiteKind
    items: list[ItemScore]

    def mean(self, metric: str) -> float:
        values = [i.metrics[metric] for i in self.items if metric in i.metrics]
        return sum(values) / len(values) if values else float("nan")

    def by_slice(self, key: str) -> dict[str, list[ItemScore]]:
        """Items grouped by one slice label (e.g. window, source); unlabelled: "unknown"."""
        groups: dict[str, list[ItemScore]] = {}
        for item in self.items:
            groups.setdefault(item.slices.get(key, "unknown"), []).append(item)
        return dict(sorted(groups.items()))

    def summary(self) -> dict[str, Any]:
        """The suite's means overall and per value of each slice that varies within it."""
        out: dict[str, Any] = {"kind": self.kind, "all": summarize(self.items)}
        for key in SLICE_KEYS:
            groups = self.by_slice(key)
            if len(groups) > 1:
                out[key] = {value: summarize(items) for value, items in groups.items()}
        return out


@dataclass(frozen=True)
class EvalReport:
    """Everything the gate needs about one model."""

    model: str  # registry version, alias or "base"
    suites: dict[str, SuiteResult]
    eval_index_version: str  # the contamination index version the eval store was at
    memorization: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per suite: means overall and per time window and source (see SuiteResult.summary)."""
        return {name: suite.summary() for name, suite in self.suites.items()}

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EvalReport:
        suites = {
            name: SuiteResult(
                name=s["name"], kind=s["kind"], items=[ItemScore(**i) for i in s["items"]]
            )
            for name, s in raw["suites"].items()
        }
        return cls(
            model=raw["model"],
            suites=suites,
            eval_index_version=raw["eval_index_version"],
            memorization=raw.get("memorization", {}),
            extra=raw.get("extra", {}),
        )

    @classmethod
    def load(cls, path: Path) -> EvalReport:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
