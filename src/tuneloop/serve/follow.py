"""Following the registry: when an alias moves, the server serves the new version, no restart.

A follower thread looks at two small files every ``poll_s`` (the registry's audit log, which
every alias move appends to, and the canary's state file) and reads the aliases whenever one
changed, or every few seconds in any case (registries without a shared disk). For each version
an alias names it fetches the adapter into a content-addressed folder, checks every file against
the sha256 manifest recorded at registration, loads it into the backend under the name
``v<version>-<sha256 prefix>`` and only then swaps the routing state. A name is never reused
for other weights, so a backend cannot serve stale weights under it (vllm#42125). An adapter
that fails verification, or was trained on another base, is refused and reported, and the
server keeps serving what it served. ``previous`` stays loaded, so a rollback is instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from tuneloop.errors import TuneloopError
from tuneloop.registry import CANARY, PREVIOUS, PRODUCTION, AdapterIntegrityError, Registry
from tuneloop.registry.release import eligibility
from tuneloop.serve.canary import actions
from tuneloop.serve.generation import Backend
from tuneloop.serve.metrics import Metrics
from tuneloop.serve.router import BASE_TARGET, CanaryRoute, Router, ServingState, Target
from tuneloop.state.canary import read_state, state_path
from tuneloop.workspace import SERVED_ADAPTERS

FULL_POLL_S = 2.0
log = logging.getLogger("tuneloop.serve.follow")


def adapter_name(version: str, sha256: str) -> str:
    return f"v{version}-{sha256[:12]}"


class AliasFollower:
    def __init__(
        self,
        serve_dir: Path,
        registry: Registry,
        backend: Backend,
        router: Router,
        metrics: Metrics,
        loop: asyncio.AbstractEventLoop,
        base_sha256: str | None,
        poll_s: float,
        watch: tuple[Path, ...] = (),
    ) -> None:
        self.serve_dir, self.registry, self.backend = serve_dir, registry, backend
        self.router, self.metrics, self.loop = router, metrics, loop
        self.base_sha256, self.poll_s = base_sha256, poll_s
        self.adapters_dir = serve_dir / SERVED_ADAPTERS
        self._watch = (*watch, state_path(serve_dir))
        self._loaded: dict[str, Target] = {}
        self._pinned: set[str] = set()
        self._ahead: str | None = None  # the newest version, loaded before it is promoted
        # version -> (adapter sha256, why): not retried until the version's sha256 changes
        self._refused: dict[str, tuple[str, str]] = {}
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tuneloop-follow", daemon=True)

    # -- the loop ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._kick.set()
        self._thread.join(timeout=10)

    def kick(self) -> None:
        """Look at the registry now (after an admin action or a canary step)."""
        self._kick.set()

    def _signature(self) -> tuple[tuple[float, int], ...]:
        out = []
        for path in self._watch:
            try:
                st = path.stat()
                out.append((st.st_mtime, st.st_size))
            except FileNotFoundError:
                out.append((0.0, 0))
        return tuple(out)

    def _run(self) -> None:
        seen, last_full = self._signature(), time.monotonic()
        while not self._stop.is_set():
            kicked = self._kick.wait(self.poll_s)
            self._kick.clear()
            now_sig = self._signature()
            if kicked or now_sig != seen or time.monotonic() - last_full > FULL_POLL_S:
                seen, last_full = now_sig, time.monotonic()
                try:
                    self.sync()
                except Exception:  # the registry may be briefly unreachable: retry
                    log.exception("could not follow the registry; retrying")
                    self.metrics.background_failures.labels(thread="follow").inc()

    # -- one synchronisation ----------------------------------------------------------------------

    def sync(self) -> ServingState:
        """Make the routing state match the registry; return the state now served."""
        with self._sync_lock:
            started = time.perf_counter()
            aliases = self.registry.aliases()
            old = self.router.state
            blocked = self._blocked(aliases)
            problems: list[str] = []
            if aliases.get(PRODUCTION) in blocked:  # still served: the loop or a person acts
                problems.append(f"production: {blocked[aliases[PRODUCTION]]}")
            production = self._production(aliases.get(PRODUCTION), old, problems)
            canary = self._canary(aliases.get(CANARY), problems, blocked)
            if aliases.get(PREVIOUS):
                self._ensure(aliases[PREVIOUS], problems)  # so that a rollback is instant
            for version in sorted(self._pinned):
                self._ensure(version, problems)
            new = ServingState(production, canary, self._routable(aliases), tuple(problems),
                               aliases.get(PREVIOUS), blocked)  # fmt: skip
            if new != old:
                self.router.state = new
                self._count_switches(old, new, time.perf_counter() - started)
            self._unload_stale(aliases)
            self._load_ahead()
            return new

    def _routable(self, aliases: dict[str, str]) -> dict[str, Target]:
        """Versions a request may name: those an alias names, and those an admin loaded.

        A version loaded ahead of its promotion stays hidden: no gate or canary has passed it.
        """
        named = set(aliases.values()) | self._pinned
        return {v: t for v, t in self._loaded.items() if v in named}

    def _load_ahead(self) -> None:
        """Load the newest registered version before any alias names it (hidden from requests).

        A candidate is usually promoted or sent to a canary soon after it is registered; with
        it already verified and loaded, following that move is a switch of names (~0.1 s under
        load here), not a download and a load on a busy generation thread (~1 s).
        """
        versions = self.registry.list()
        if not versions or versions[-1].version in self._loaded:
            return
        self._ahead = versions[-1].version
        self._ensure(self._ahead, [])

    def _production(
        self, version: str | None, old: ServingState, problems: list[str]
    ) -> Target | None:
        if version is None:
            return BASE_TARGET
        target = self._ensure(version, problems)
        return target if target is not None else old.production  # keep serving the last good one

    def _blocked(self, aliases: dict[str, str]) -> dict[str, str]:
        """Why each version an alias or an admin names may not serve (the release check)."""
        out = {}
        for version in sorted(set(aliases.values()) | self._pinned):
            found = eligibility(self.registry.get(version), None)
            if not found.ok:
                out[version] = found.sentence()
        return out

    def _canary(
        self, version: str | None, problems: list[str], blocked: dict[str, str]
    ) -> CanaryRoute | None:
        state = read_state(self.serve_dir)
        if version is None or state is None or not state.running or state.version != version:
            return None
        target = None if version in blocked else self._ensure(version, problems)
        if target is None:
            reason = blocked.get(version) or (
                f"adapter of v{version} refused: {self._refused.get(version, ('', ''))[1]}"
            )
            with contextlib.suppress(TuneloopError):  # stopped meanwhile
                actions.stop(self.serve_dir, self.registry, reason)
            return None
        return CanaryRoute(target, state.weight, state.canary_id)

    def pin(self, version: str) -> Target:
        """Load a version so that it can be asked for by name (``model: "v3"``)."""
        ref = self.registry.resolve(version).version
        problems: list[str] = []
        target = self._ensure(ref, problems, retry=True)
        if target is None:
            raise TuneloopError("; ".join(problems))
        self._pinned.add(ref)
        self.sync()
        return target

    def _ensure(self, version: str, problems: list[str], retry: bool = False) -> Target | None:
        if version in self._loaded:
            return self._loaded[version]
        try:
            mv = self.registry.get(version)
        except TuneloopError as exc:
            problems.append(f"v{version}: {exc}")
            return None
        sha, why = self._refused.get(version, ("", ""))
        if not retry and sha == mv.adapter_sha256:
            problems.append(f"v{version} refused: {why}")
            return None
        try:
            target = self._load(version, mv.adapter_sha256, mv.lineage.base_sha256)
        except (AdapterIntegrityError, TuneloopError, OSError, ValueError, RuntimeError) as exc:
            self._refuse(version, mv.adapter_sha256, str(exc))
            problems.append(f"v{version} refused: {exc}")
            return None
        self._loaded[version] = target
        return target

    def _load(self, version: str, sha256: str, base_sha256: str) -> Target:
        if self.base_sha256 and base_sha256 != self.base_sha256:
            raise TuneloopError(
                f"v{version} was trained on base weights {base_sha256[:12]}…, this server serves "
                f"{self.base_sha256[:12]}…; serve it with its own base"
            )
        name = adapter_name(version, sha256)
        folder = self.registry.fetch_adapter(version, self.adapters_dir / name)
        self._await(self.backend.load_adapter(name, folder))
        return Target(version, name, sha256)

    def _refuse(self, version: str, sha256: str, why: str) -> None:
        self._refused[version] = (sha256, why)
        self.metrics.refused_adapters.labels(version=f"v{version}").inc()
        log.error("refused the adapter of v%s: %s", version, why)
        self.registry.record_event(
            "adapter_refused", version=version, adapter_sha256=sha256, reason=why
        )

    def _unload_stale(self, aliases: dict[str, str]) -> None:
        keep = set(aliases.values()) | self._pinned | ({self._ahead} if self._ahead else set())
        stale = [
            (version, target)
            for version, target in self._loaded.items()
            if version not in keep and not (target.adapter and self.router.in_use(target.adapter))
        ]
        if not stale:
            return
        for version, _ in stale:
            del self._loaded[version]
        self.router.state = replace(self.router.state, loaded=self._routable(aliases))
        for _, target in stale:
            if target.adapter:
                self._await(self.backend.unload_adapter(target.adapter))

    def _count_switches(self, old: ServingState, new: ServingState, seconds: float) -> None:
        if old.production != new.production:
            self.metrics.switches.labels(alias=PRODUCTION).inc()
        if old.canary != new.canary:
            self.metrics.switches.labels(alias=CANARY).inc()
        self.metrics.switch_seconds.observe(seconds)
        self.metrics.canary_weight.set(new.canary.weight if new.canary else 0.0)

    def _await(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=300)
