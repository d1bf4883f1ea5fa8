"""FedAvg of LoRA updates, weighted by each site's example count, with an audit of the wire.

Flower's FedAvg averages whatever tensors come back. Here sites send *changes* of the tensors
they trained (under FFA: B only), so the next global adapter is ``global + Σ n_i·Δ_i / Σ n_i``
per tensor: with A shared and frozen, that makes the new ``B·A`` exactly the example-weighted
mean of the sites' ``B_i·A``. A site that fails fails the round (its lineage would be missing),
and every reply is described (tensor names and shapes, metric and report fields) for the audit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from tuneloop.errors import WorkspaceError
from tuneloop.federated.factors import Arrays, apply_update, is_lora_key, weighted_mean
from tuneloop.federated.wire import (
    ARRAYS,
    METRICS,
    PLAN,
    SITE,
    WEIGHT,
    SiteReport,
    describe,
    from_record,
    to_record,
)


@dataclass
class RoundRecord:
    """One round as the aggregator saw it: before, what arrived, after."""

    server_round: int
    global_before: Arrays
    deltas: list[Arrays]
    weights: list[float]
    reports: list[SiteReport]
    metrics: list[dict[str, float]]
    wire: list[dict[str, Any]]
    aggregate: Arrays = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready: per-site lineage and metrics, the wire audit; no tensors."""
        return {
            "round": self.server_round,
            "sites": [
                {**r.to_dict(), **m} for r, m in zip(self.reports, self.metrics, strict=True)
            ],
            "wire": self.wire,
        }


def _site_error(msg: Message) -> str:
    reason = (msg.error.reason or "").strip().splitlines()
    tail = [line for line in reason if "Error:" in line] or reason or ["unknown error"]
    return tail[-1].split("Error: ", 1)[-1]


class LoraFedAvg(FedAvg):
    """Example-weighted FedAvg of adapter changes; every round handed to ``on_round``."""

    def __init__(self, sites: int, on_round: Callable[[RoundRecord], None]) -> None:
        super().__init__(
            fraction_evaluate=0.0,
            min_train_nodes=sites,
            min_available_nodes=sites,
            arrayrecord_key=ARRAYS,
            configrecord_key=PLAN,
        )
        self.on_round = on_round
        self.current: Arrays = {}

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self.current = from_record(arrays)
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        valid, failed = self._check_and_log_replies(list(replies), is_train=True)
        if failed or not valid:
            why = _site_error(failed[0]) if failed else "no site replied"
            raise WorkspaceError(f"round {server_round}: a site failed: {why}")
        record = self._record(server_round, valid)
        delta = weighted_mean(record.deltas, record.weights)
        record.aggregate = apply_update(self.current, delta)
        self.on_round(record)
        return to_record(record.aggregate), MetricRecord({WEIGHT: sum(record.weights)})

    def _record(self, server_round: int, replies: list[Message]) -> RoundRecord:
        record = RoundRecord(server_round, self.current, [], [], [], [], [])
        for msg in replies:
            content = msg.content
            arrays, metrics = content.array_records[ARRAYS], content.metric_records[METRICS]
            site = content.config_records[SITE]
            record.wire.append(describe(arrays, metrics, site))
            delta = from_record(arrays)
            unknown = sorted(k for k in delta if not is_lora_key(k) or k not in self.current)
            if unknown:
                raise WorkspaceError(
                    f"round {server_round}: a site sent {unknown[0]!r}, "
                    "which is not a tensor of the global adapter"
                )
            record.deltas.append(delta)
            record.weights.append(float(metrics[WEIGHT]))  # type: ignore[arg-type]
            record.reports.append(SiteReport.from_record(site))
            record.metrics.append({k: float(v) for k, v in metrics.items()})  # type: ignore[arg-type]
        return record
