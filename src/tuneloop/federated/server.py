"""The aggregator's side: the global adapter, the Flower ServerApp, and what happens after each
round's averaging (save → gate → register only if it passed).

The aggregator holds the base model with one LoRA adapter whose A factors come from a fixed
seed: under FFA those are the A every site keeps, so the seed is part of the run's identity.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from tuneloop.federated.factors import Arrays
from tuneloop.federated.gate import gate_round
from tuneloop.federated.register import register_round, round_lineage, site_lineage
from tuneloop.federated.strategy import LoraFedAvg, RoundRecord
from tuneloop.federated.wire import RoundPlan, to_record
from tuneloop.model.base import BaseModelInfo
from tuneloop.train.adapter import save_adapter
from tuneloop.train.lora import LoraSettings, with_lora
from tuneloop.workspace import Workspace


@dataclass
class RoundOutcome:
    """One round's result: the gate's decision and, when it passed, the registered version."""

    server_round: int
    decision: str
    reasons: list[str]
    version: str | None
    adapter_dir: str
    site_val_loss: float  # example-weighted mean of the sites' validation losses
    record: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.server_round,
            "decision": self.decision,
            "reasons": self.reasons,
            "version": self.version,
            "adapter_dir": self.adapter_dir,
            "site_val_loss": self.site_val_loss,
            **self.record,
        }


def fresh_adapter(model: Any, lora: LoraSettings, seed: int) -> tuple[Any, Arrays]:
    """The base with a fresh LoRA adapter drawn from ``seed`` (A random, B zero), and its
    tensors: the round-1 global adapter, and under FFA the A every site keeps."""
    import torch  # noqa: PLC0415 - heavy (torch)
    from peft import get_peft_model_state_dict  # noqa: PLC0415 - heavy (peft)

    torch.manual_seed(seed)
    model = with_lora(model, lora)
    state = get_peft_model_state_dict(model)
    return model, {k: v.detach().float().numpy().copy() for k, v in state.items()}


def weighted_val_loss(record: RoundRecord) -> float:
    pairs = [
        (m["val_loss"], w)
        for m, w in zip(record.metrics, record.weights, strict=True)
        if not math.isnan(m["val_loss"])
    ]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else math.nan


@dataclass
class Aggregator:
    """Turns each averaged round into a gated, maybe registered, candidate."""

    ws: Workspace
    plan: RoundPlan
    model: Any  # the peft-wrapped base, to write each round's adapter
    base: BaseModelInfo
    base_ref: str
    rounds: int
    extra_lineage: dict[str, Any]
    observe: Callable[[RoundRecord], None] | None = None
    outcomes: list[RoundOutcome] = field(default_factory=list)

    def _save(self, record: RoundRecord) -> Path:
        import torch  # noqa: PLC0415 - heavy (torch)
        from peft import set_peft_model_state_dict  # noqa: PLC0415 - heavy (peft)

        weights = {k: torch.from_numpy(v.copy()) for k, v in record.aggregate.items()}
        set_peft_model_state_dict(self.model, weights)
        dest = self.ws.federated_round_dir(self.plan.run_id, record.server_round)
        save_adapter(self.model, dest)
        return dest

    def on_round(self, record: RoundRecord) -> None:
        if self.observe is not None:
            self.observe(record)
        adapter = self._save(record)
        name = f"fed-{self.plan.run_id}-r{record.server_round}"
        verdict = gate_round(self.ws, name, adapter, record.reports, self.plan.index_version)
        version = None
        val_loss = weighted_val_loss(record)
        if verdict.passed:
            sites = site_lineage(record.reports, record.weights)
            hyper = round_lineage(
                self.plan,
                self.base,
                self.base_ref,
                record.server_round,
                self.rounds,
                sites,
                self.extra_lineage,
            )
            metrics = {} if math.isnan(val_loss) else {"site_val_loss": val_loss}
            version = register_round(
                self.ws,
                adapter,
                self.base,
                self.base_ref,
                record.reports,
                hyper,
                verdict.decision,
                verdict.report,
                metrics,
            ).version
        self.outcomes.append(
            RoundOutcome(
                record.server_round,
                verdict.gate.decision,
                verdict.gate.reasons,
                version,
                str(adapter),
                val_loss,
                record.summary(),
            )
        )


def server_app(
    strategy: LoraFedAvg, initial: Arrays, plan: RoundPlan, rounds: int, errors: list[BaseException]
) -> ServerApp:
    """A ServerApp running ``rounds`` rounds; an exception is kept for the caller to raise
    (the simulation engine would only log it)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        del context
        try:
            strategy.start(
                grid=grid,
                initial_arrays=to_record(initial),
                num_rounds=rounds,
                train_config=plan.to_record(),
            )
        except BaseException as exc:  # re-raised by the caller, after the engine stops
            errors.append(exc)

    return app
