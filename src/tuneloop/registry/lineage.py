"""What a model version came from (its lineage, kept as version tags), and the version itself."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from datetime import datetime
from typing import Any

from tuneloop.errors import WorkspaceError


@dataclass(frozen=True)
class Lineage:
    """Everything that produced a model version, enough to rebuild, compare or erase it."""

    base_ref: str
    base_revision: str
    base_sha256: str
    dataset_version: str
    replay_version: str
    hyperparameters: dict[str, Any]
    code_version: str
    eval_report: str | None = None
    gate_decision: str | None = None
    parent_version: str | None = None

    def to_tags(self) -> dict[str, str]:
        tags = {k: v for k, v in asdict(self).items() if isinstance(v, str)}
        tags["hyperparameters"] = json.dumps(self.hyperparameters, sort_keys=True)
        return tags

    @classmethod
    def from_tags(cls, tags: Mapping[str, str], where: str) -> Lineage:
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in tags and f.default is MISSING:
                raise WorkspaceError(f"{where}: tag {f.name!r} missing; not registered by tuneloop")
            values[f.name] = tags.get(f.name)
        values["hyperparameters"] = json.loads(values["hyperparameters"])
        return cls(**values)


@dataclass(frozen=True)
class ModelVersion:
    version: str
    lineage: Lineage
    adapter_sha256: str
    aliases: list[str]
    created_at: datetime
    run_id: str
    source: str
    tainted: dict[str, Any] | None = None  # set when data it was trained on was erased
    waiver: dict[str, Any] | None = None  # set when a release was forced past the check
