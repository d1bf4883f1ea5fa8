"""Where did each planted problem end up? The demo's answer, record by record."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneloop.contamination.persist import read_calibration
from tuneloop.datasets import REJECTS_FILE, DatasetStore
from tuneloop.demo.generate import GeneratedData
from tuneloop.evalside.store import EvalStore
from tuneloop.workspace import Workspace

EXPECTED: dict[str, str | tuple[str, ...]] = {
    "pii": "kept:redacted",
    "exact_dup": "exact_dedup",
    "near_dup": "near_dedup",
    "eval_copy": "contamination",
    "eval_near": "contamination",
    "eval_paraphrase": "contamination:semantic",
    "canary": "contamination:canary",
    "low_quality": ("quality", "clean"),
    "thumbs_down": "feedback:thumbs_down",
    "corrected": "kept:corrected",
    "over_long": "gateway:over_long",
    "empty": "gateway:empty",
}


def expected_stage(kind: str, semantic: bool = True) -> tuple[str, ...]:
    """Where a planted problem should end up. Paraphrases pass when the semantic check is off,
    and may pass when it is on: a reworded support request scores 0.61-0.72 with its source,
    under any threshold calibrated on templated chats (docs/contamination.md)."""
    if kind == "eval_paraphrase":
        return ("contamination:semantic", "kept") if semantic else ("kept",)
    found = EXPECTED.get(kind, "kept")
    return found if isinstance(found, tuple) else (found,)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


@dataclass
class Outcomes:
    truth: dict[str, str]
    outcome: dict[str, str] = field(default_factory=dict)
    total: int = 0
    semantic: bool = False

    def by_kind(self) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for rid, label in sorted(self.truth.items(), key=lambda kv: kv[1]):
            kind = label.split(":")[0]
            row = rows.setdefault(
                kind, {"records": 0, "eval_bucket": 0, "caught": 0, "outcomes": Counter()}
            )
            got = self.outcome.get(rid, "missing")
            row["records"] += 1
            row["outcomes"][got] += 1
            row["eval_bucket"] += got == "eval_bucket"
            row["caught"] += got.startswith(expected_stage(kind, self.semantic))
        return rows

    def accounting(self) -> dict[str, Any]:
        kinds = Counter(v.split(":")[0] for v in self.outcome.values())
        train = sum(
            1 for v in self.outcome.values() if v.startswith("kept") and "validation" not in v
        )
        validation = sum(1 for v in self.outcome.values() if v.endswith("validation"))
        dropped = len(self.outcome) - train - validation - kinds["eval_bucket"]
        return {
            "records": self.total,
            "train": train,
            "validation": validation,
            "eval": kinds["eval_bucket"],
            "dropped": dropped,
            "balanced": len(self.outcome) == self.total,
        }

    def summary(self) -> dict[str, Any]:
        kinds = {
            k: {
                **v,
                "outcomes": dict(v["outcomes"]),
                "expected": "|".join(expected_stage(k, self.semantic)),
            }
            for k, v in self.by_kind().items()
        }
        return {"planted": kinds, "accounting": self.accounting()}


def _kept_label(record_meta: dict[str, Any], text: str, pii_value: str | None) -> str:
    parts = ["kept"]
    if pii_value is not None and pii_value not in text:
        parts.append("redacted")
    if record_meta.get("corrected"):
        parts.append("corrected")
    parts.append(str(record_meta.get("split", "train")))
    return ":".join(parts)


def collect_outcomes(
    ws: Workspace,
    data: GeneratedData,
    ingest_rejects: str | None,
    store: DatasetStore,
    version: str,
) -> Outcomes:
    calibration = read_calibration(ws.index_dir) or {}
    semantic = any(c.on for c in calibration.values())  # off for suites too templated for it
    out = Outcomes(truth=data.truth, total=len(data.interactions), semantic=semantic)
    if ingest_rejects:
        for row in _read_jsonl(Path(ingest_rejects)):
            label = row.get("method") or row["reason"]
            # Eval-bound records dropped by a curation block count as caught by that block.
            out.outcome[row["id"]] = f"{row.get('block') or row['stage']}:{label}"
    with EvalStore(ws.store("eval", "eval")) as estore:
        for item in estore.iter_items(suite=ws.config.gateway.eval_suite):
            out.outcome[item.item_id] = "eval_bucket"
    for row in _read_jsonl(store.path(version) / REJECTS_FILE):
        label = row.get("method") or row["reason"]
        out.outcome[row["id"]] = f"{row['block']}:{label}"
    for rec in store.load(version):
        out.outcome[rec.id] = _kept_label(rec.meta, rec.content_text, data.pii_values.get(rec.id))
    return out
