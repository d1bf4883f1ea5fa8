"""Where alias moves are recorded: a JSONL file beside the database, or registry tags."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

from mlflow import MlflowClient

from tuneloop.registry.locks import with_retry

AUDIT_TAG_PREFIX = "tuneloop.audit."
MAX_TAG_CHARS = 100_000  # MLflow's limit on a model version tag value


class AuditLog(Protocol):
    def append(self, event: dict[str, Any]) -> None: ...

    def read(self) -> list[dict[str, Any]]: ...


class JsonlAudit:
    """One JSON line per alias move in a local file, fsynced: the embedded default."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, event: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(event, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


class TagAudit:
    """Audit events as numbered registered-model tags, for registries with no shared disk."""

    def __init__(self, client: MlflowClient, name: str) -> None:
        self.client, self.name = client, name

    def _tags(self) -> dict[str, str]:
        tags = with_retry(lambda: self.client.get_registered_model(self.name)).tags
        return {k: v for k, v in tags.items() if k.startswith(AUDIT_TAG_PREFIX)}

    def append(self, event: dict[str, Any]) -> None:
        key = f"{AUDIT_TAG_PREFIX}{len(self._tags()) + 1:08d}"
        value = json.dumps(event, sort_keys=True)
        with_retry(lambda: self.client.set_registered_model_tag(self.name, key, value))

    def read(self) -> list[dict[str, Any]]:
        return [json.loads(v) for _, v in sorted(self._tags().items())]
