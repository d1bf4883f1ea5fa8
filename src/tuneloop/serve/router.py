"""Which model answers a request: the alias state the server follows, and the sticky canary split.

The state is one immutable snapshot, replaced whole when an alias moves, so a request reads
one consistent view (production, canary, weight) without a lock; a request keeps the target
it was routed to until it finishes, and the adapter it uses is not unloaded before then.
Users stay on one arm for the whole canary: the arm is a stable hash of their id, and raising
the weight only moves more users onto the canary, never a canary user back.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from tuneloop.gateway import hash_fraction
from tuneloop.registry.core import is_number
from tuneloop.serve.errors import APIError

Arm = Literal["production", "canary", "pinned", "base"]
BASE = "base"


@dataclass(frozen=True, slots=True)
class Target:
    """A servable model: a registry version with its loaded adapter, or the base model."""

    version: str  # "3", or "base"
    adapter: str | None = None  # the backend's name for the loaded adapter
    sha256: str | None = None

    @property
    def model_id(self) -> str:
        return BASE if self.version == BASE else f"v{self.version}"

    @property
    def fingerprint(self) -> str:
        return f"tuneloop-{self.model_id}" + (f"-{self.sha256[:12]}" if self.sha256 else "")


BASE_TARGET = Target(BASE)


@dataclass(frozen=True, slots=True)
class CanaryRoute:
    target: Target
    weight: float  # percent of users
    canary_id: str


@dataclass(frozen=True, slots=True)
class ServingState:
    production: Target | None = None  # None: not loaded yet, or its adapter was refused
    canary: CanaryRoute | None = None
    loaded: Mapping[str, Target] = field(default_factory=dict)  # by version
    problems: tuple[str, ...] = ()  # adapters refused, shown by /readyz and the admin API
    previous: str | None = None  # the version the ``previous`` alias names
    blocked: Mapping[str, str] = field(default_factory=dict)  # version -> why it may not serve


@dataclass(frozen=True, slots=True)
class Routed:
    arm: Arm
    target: Target
    canary_id: str | None = None


def _version_ref(name: str) -> str | None:
    text = name.strip().removeprefix("v")
    return text if is_number(text) else None


class Router:
    def __init__(self, salt: str, base_name: str) -> None:
        self.salt = salt
        self.base_name = base_name
        self.state = ServingState()
        self._inflight: Counter[str] = Counter()
        self._lock = threading.Lock()

    def route(self, model: str, user_key: str) -> Routed:
        state = self.state  # one snapshot for the whole decision
        name = model.strip()
        if name in ("", "production", "default", "tuneloop"):
            canary = state.canary
            if canary and hash_fraction(self.salt, user_key) * 100 < canary.weight:
                return Routed("canary", canary.target, canary.canary_id)
            if state.production is None:
                why = "; ".join(state.problems) or "the production adapter is still loading"
                raise APIError(
                    503,
                    f"production is not being served: {why}",
                    "not_ready",
                    headers={"Retry-After": "5"},
                )
            return Routed("production", state.production, canary.canary_id if canary else None)
        if name == "canary":
            if state.canary is None:
                raise APIError(
                    404,
                    "no canary is running; use model 'production' or start one "
                    "with `tuneloop canary start VERSION`",
                    "model_not_found",
                    "model",
                )
            return Routed("canary", state.canary.target, state.canary.canary_id)
        if name in (BASE, self.base_name):
            return Routed("base", BASE_TARGET)
        version = state.previous if name == "previous" else _version_ref(name)
        if version is not None and version in state.blocked:
            raise APIError(403, f"model {name!r}: {state.blocked[version]}", "model_not_eligible",
                           "model")  # fmt: skip
        if version is not None and version in state.loaded:
            return Routed("pinned", state.loaded[version])
        raise APIError(404, self._unknown(name, state), "model_not_found", "model")

    def _unknown(self, name: str, state: ServingState) -> str:
        served = ", ".join(self.model_ids(state))
        hint = (
            " (an admin can load it: POST /admin/adapters)"
            if _version_ref(name) is not None
            else ""
        )
        return f"model {name!r} is not served here{hint}; choose one of: {served}"

    def model_ids(self, state: ServingState | None = None) -> list[str]:
        state = state or self.state
        ids = ["production", *(["canary"] if state.canary else []),
               *(["previous"] if state.previous in state.loaded else []), BASE]  # fmt: skip
        return ids + sorted((t.model_id for t in state.loaded.values()), key=lambda m: int(m[1:]))

    # -- adapters in use ---------------------------------------------------------------------------

    def acquire(self, target: Target) -> None:
        if target.adapter:
            with self._lock:
                self._inflight[target.adapter] += 1

    def release(self, target: Target) -> None:
        if target.adapter:
            with self._lock:
                self._inflight[target.adapter] -= 1
                if self._inflight[target.adapter] <= 0:
                    del self._inflight[target.adapter]

    def in_use(self, adapter: str) -> bool:
        with self._lock:
            return self._inflight.get(adapter, 0) > 0
