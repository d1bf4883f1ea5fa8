"""What crosses between the aggregator and a site, and nothing else.

Down: the global adapter's tensors and a :class:`RoundPlan` (training settings, how to
aggregate, how to clip, which eval index to check against). Up: the change of the tensors the
site trained, one metric record (its example count, the weight of FedAvg, and losses), and one
:class:`SiteReport`: the dataset version's id and counts, its newest time window, and how many
of its records match the aggregator's eval index. Never a record, never text from one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord

from tuneloop.federated.factors import Aggregation, Arrays
from tuneloop.federated.privacy import UpdatePrivacy
from tuneloop.train.loop import TrainSettings

ARRAYS, METRICS, PLAN, SITE = "arrays", "metrics", "plan", "site"
WEIGHT = "num-examples"  # the key Flower's FedAvg weighs by


@dataclass(frozen=True)
class RoundPlan:
    """The aggregator's instructions for a round, the same for every site."""

    run_id: str
    settings: TrainSettings
    aggregation: Aggregation
    privacy: UpdatePrivacy
    base_sha256: str
    index_dir: str  # the aggregator's contamination index: one-way hashes only
    index_version: str

    def to_record(self) -> ConfigRecord:
        body = {**asdict(self), "settings": self.settings.to_dict()}
        return ConfigRecord({PLAN: json.dumps(body, sort_keys=True)})

    @classmethod
    def from_record(cls, record: ConfigRecord) -> RoundPlan:
        raw = json.loads(str(record[PLAN]))
        settings = TrainSettings.model_validate({**raw["settings"], "privacy": None})
        return cls(**{**raw, "settings": settings, "privacy": UpdatePrivacy(**raw["privacy"])})


@dataclass(frozen=True)
class SiteReport:
    """A site's lineage for one round: ids and counts, never records."""

    site: str
    dataset_version: str
    train_records: int
    validation_records: int
    cutoff_window: str  # newest week of its data ("" if undated): the memorization probe's cut
    contaminated: int  # its records matching the aggregator's current eval index
    base_sha256: str

    def to_record(self) -> ConfigRecord:
        return ConfigRecord(dict(asdict(self).items()))

    @classmethod
    def from_record(cls, record: ConfigRecord) -> SiteReport:
        return cls(**{f.name: record[f.name] for f in fields(cls)})  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def to_record(arrays: Mapping[str, np.ndarray[Any, Any]]) -> ArrayRecord:
    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in arrays.items()})


def from_record(record: ArrayRecord) -> Arrays:
    return {k: np.array(v.numpy()) for k, v in record.items()}


def describe(arrays: ArrayRecord, metrics: Mapping[str, Any], site: ConfigRecord) -> dict[str, Any]:
    """One reply as an audit line: tensor names, shapes and dtypes; metric and report fields."""
    return {
        "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()},
        "metrics": sorted(metrics),
        "report": {k: site[k] for k in sorted(site)},
    }
