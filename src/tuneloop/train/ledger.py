"""The privacy ledger: the ε each user has spent over the rounds of the loop, and the budget.

A continuous loop spends privacy every round a user's data is trained on (their new records,
or old ones coming back through the replay buffer). Rounds compose by basic composition: a
user's total is the sum of the ε (and δ) of every round that held their data. Tighter
composition exists (the rounds' RDP curves could be added), but the sum is simple, safe and
easy to audit.

A round is charged before it trains, with the ε it would spend at ``max_steps`` ("reserved":
a crashed run's checkpoints hold what it learned), and charged again with what it did spend
when it finishes ("spent"; early stopping spends less). Charges are keyed by run id, so a
resumed or repeated run is not counted twice. Users are stored as an unsalted sha256 prefix
of their unit key, never by id. The file is JSON, replaced atomically (temp file + rename).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tuneloop.errors import PrivacyBudgetError, WorkspaceError
from tuneloop.jsonl import atomic_writer


def unit_hash(unit: str) -> str:
    return hashlib.sha256(unit.encode()).hexdigest()[:16]


class PrivacyLedger:
    """``rounds``: run id → its ε, δ, dataset and state; ``units``: unit hash → run ids."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rounds: dict[str, dict[str, Any]] = {}
        self.units: dict[str, list[str]] = {}
        if path.exists():
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                self.rounds, self.units = raw["rounds"], raw["units"]
            except (ValueError, KeyError) as exc:
                raise WorkspaceError(
                    f"{path}: unreadable privacy ledger ({exc}); restore it from a backup — "
                    "without it the ε already spent is unknown"
                ) from None

    def spent(self, unit: str, excluding: str | None = None) -> float:
        """The ε a unit has spent, over every round but ``excluding``."""
        runs = self.units.get(unit_hash(unit), [])
        return sum(float(self.rounds[r]["epsilon"]) for r in runs if r != excluding)

    def check(self, run_id: str, units: Iterable[str], epsilon: float, budget: float) -> float:
        """Refuse the round when it would take any unit past ``budget``; return the largest
        total any unit reaches with it."""
        keys = list(units)
        totals = [self.spent(u, excluding=run_id) for u in keys]
        over = [t for t in totals if t + epsilon > budget + 1e-9]
        if over:
            raise PrivacyBudgetError(
                f"privacy budget: {len(over)} of {len(keys)} users in this round would pass "
                f"train.privacy.budget_epsilon = {budget:g} (up to {max(over):.2f} spent + "
                f"{epsilon:.2f} for this round); raise the budget, lower train.privacy.epsilon, "
                "or curate a dataset without their data"
            )
        return max(totals, default=0.0) + epsilon

    def charge(
        self, run_id: str, units: Iterable[str], epsilon: float, delta: float, dataset: str,
        state: str,
    ) -> None:  # fmt: skip
        """Record (or update) the round's charge and write the ledger atomically."""
        self.rounds[run_id] = {
            "epsilon": epsilon, "delta": delta, "dataset_version": dataset, "state": state,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }  # fmt: skip
        for unit in units:
            runs = self.units.setdefault(unit_hash(unit), [])
            if run_id not in runs:
                runs.append(run_id)
        self.rounds[run_id]["units"] = sum(1 for runs in self.units.values() if run_id in runs)
        body = json.dumps({"version": 1, "rounds": self.rounds, "units": self.units}, indent=0)
        with atomic_writer(self.path, "w") as fh:
            fh.write(body)
