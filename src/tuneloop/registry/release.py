"""Whether a version may serve users: one check for every way a version reaches them.

``registry promote``, ``canary start``, the server's admin routes, the alias follower and
requests that name a version all ask :func:`eligibility`. A version is eligible when

* the gate passed it;
* it is not tainted: no data it was trained on has been erased since;
* for a promotion or a canary (``fresh=True``), the gate passed it on the eval index that is
  current now: scores on last week's eval set are no reason to release it this week.

A version gated on an older index may still keep serving, be rolled back to and be named in
requests: every eval item added since was checked against the training data before it was
accepted (``evalset add``, the gateway), so the contamination certificate it passed still holds.

A refusal names each reason. ``--force`` with a reason passes it: the waiver is kept on the
version (who, why, when, and which reasons it waived) and in the audit log, and a reason that
appears after the waiver (the version tainted later) blocks again. Production itself is never
taken out of serving by this check: an ineligible production is listed as a problem by
``/readyz``, ``/admin/state``, ``registry list`` and the report, and the loop replaces it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from tuneloop.errors import WorkspaceError
from tuneloop.registry.lineage import ModelVersion

if TYPE_CHECKING:
    from tuneloop.registry.core import Registry

Code = Literal["ungated", "gate_refused", "gate_inconclusive", "gate_stale", "tainted"]
WAIVER_TAG = "release_waiver"


class ReleaseRefusedError(WorkspaceError):
    """A version that may not serve was asked to: the message names every reason."""

    def __init__(self, eligibility: Eligibility, action: str) -> None:
        super().__init__(
            f"{action} refused: {eligibility.sentence()}; pass --force REASON to do it "
            "anyway (the audit log keeps who and why)"
        )
        self.eligibility = eligibility


@dataclass(frozen=True)
class Problem:
    code: Code
    detail: str


@dataclass(frozen=True)
class Eligibility:
    version: str
    problems: tuple[Problem, ...] = ()  # what blocks it now
    waived: tuple[Problem, ...] = ()  # what a forced release let through

    @property
    def ok(self) -> bool:
        return not self.problems

    def sentence(self) -> str:
        if self.ok:
            waived = f" (waived: {'; '.join(p.detail for p in self.waived)})" if self.waived else ""
            return f"v{self.version} may serve{waived}"
        return f"v{self.version} may not serve: " + "; ".join(p.detail for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "eligible": self.ok,
            "problems": [p.detail for p in self.problems],
            "waived": [p.detail for p in self.waived],
        }


def _gate_problem(mv: ModelVersion, index_version: str | None, fresh: bool) -> Problem | None:
    v = mv.version
    raw = mv.lineage.gate_decision
    if not raw:
        return Problem("ungated", f"v{v} has not been through the gate (`tuneloop gate v{v}`)")
    decision = json.loads(raw)
    if decision.get("decision") != "pass":
        why = "; ".join(decision.get("reasons", [])[:2]) or "no reason recorded"
        if decision.get("decision") == "inconclusive":
            return Problem("gate_inconclusive", f"the gate could not decide on v{v} ({why})")
        return Problem("gate_refused", f"the gate refused v{v} ({why})")
    gated_on = decision.get("eval_index_version") or None
    if fresh and gated_on != index_version:
        on = f"eval index {gated_on[:12]}" if gated_on else "an eval index it did not record"
        now = f"{index_version[:12]}" if index_version else "none"
        return Problem("gate_stale", f"v{v} passed the gate on {on}, the current one is {now} "
                       f"(`tuneloop gate v{v}` again)")  # fmt: skip
    return None


def _taint_problem(mv: ModelVersion) -> Problem | None:
    if mv.tainted is None:
        return None
    erasure = mv.tainted.get("request_id", "an erasure")
    return Problem("tainted", f"v{mv.version} was trained on data erased since ({erasure})")


def eligibility(mv: ModelVersion, index_version: str | None, fresh: bool = False) -> Eligibility:
    """Whether ``mv`` may serve; ``fresh``: as a new release, gated on the current eval index."""
    found = [p for p in (_gate_problem(mv, index_version, fresh), _taint_problem(mv)) if p]
    waived_codes = set((mv.waiver or {}).get("codes", []))
    return Eligibility(
        mv.version,
        tuple(p for p in found if p.code not in waived_codes),
        tuple(p for p in found if p.code in waived_codes),
    )


def waiver(eligibility: Eligibility, reason: str, actor: str) -> dict[str, Any]:
    """What a forced release records on the version: the reasons it let through."""
    if not reason.strip():
        raise WorkspaceError("--force needs a reason, e.g. --force 'incident 4711: hotfix'")
    return {
        "codes": sorted({p.code for p in (*eligibility.problems, *eligibility.waived)}),
        "problems": [p.detail for p in eligibility.problems],
        "reason": reason.strip(),
        "by": actor,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def require(
    registry: Registry,
    ref: str | int,
    index_version: str | None,
    action: str,
    force: str | None = None,
    fresh: bool = True,
) -> ModelVersion:
    """The version ``ref`` names, if it may serve; else refused, unless ``force`` (a reason)
    waives what blocks it, which the version and the audit log keep."""
    mv = registry.resolve(ref)
    found = eligibility(mv, index_version, fresh)
    if found.ok:
        return mv
    if force is None:
        raise ReleaseRefusedError(found, action)
    registry.set_waiver(mv.version, waiver(found, force, registry.actor))
    return registry.get(mv.version)


def promote(
    registry: Registry, ref: str | int, index_version: str | None, force: str | None = None
) -> ModelVersion:
    """production → ``ref``, if it may serve as a new release (or ``force`` says why anyway)."""
    mv = require(registry, ref, index_version, f"promoting {ref}", force)
    registry.promote(mv.version)
    return mv


def rollback(
    registry: Registry,
    to: str | int | None = None,
    expected: str | int | None = None,
    force: str | None = None,
) -> str:
    """production → ``to`` (else ``previous``), if that version may serve; see
    :meth:`Registry.rollback` for ``expected``. A rollback target need not be gated on the
    current eval index (it is the way back), but a tainted or refused one is refused."""
    target = to if to is not None else registry.aliases().get("previous")
    if target is not None:
        require(registry, target, None, f"rolling back to v{target}", force, fresh=False)
    return registry.rollback(to, expected)
