"""The server's canary loop: every interval, judge the running analysis and act on the verdict."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tuneloop.config import CanaryConfig
from tuneloop.registry import Registry
from tuneloop.serve.canary import actions
from tuneloop.serve.canary.judge import ArmSample, Verdict, judge
from tuneloop.state.canary import CanaryState, read_state
from tuneloop.state.serving_log import ServingLog

logger = logging.getLogger("tuneloop.serve.canary")


@dataclass(frozen=True)
class Judgment:
    state: CanaryState
    production: ArmSample
    canary: ArmSample
    verdict: Verdict


def judge_now(state: CanaryState, log: ServingLog, cfg: CanaryConfig) -> Judgment:
    """The verdict on everything the serving log holds for this analysis so far."""
    rows = [dict(r) for r in log.canary_rows(state.canary_id)]
    prod = ArmSample.from_rows([r for r in rows if r["arm"] == "production"])
    canary = ArmSample.from_rows([r for r in rows if r["arm"] == "canary"])
    return Judgment(state, prod, canary, judge(canary, prod, cfg))


class CanaryController:
    def __init__(
        self,
        serve_dir: Path,
        registry: Registry,
        log: ServingLog,
        cfg: CanaryConfig,
        before_judging: Callable[[], None],
        after_acting: Callable[[], None],
        on_failure: Callable[[], None] = lambda: None,
    ) -> None:
        self.serve_dir, self.registry, self.log, self.cfg = serve_dir, registry, log, cfg
        self._before, self._after, self._failed = before_judging, after_acting, on_failure
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tuneloop-canary", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def run_once(self) -> Judgment | None:
        state = read_state(self.serve_dir)
        if state is None or not state.running:
            return None
        baseline = actions.production_of(self.registry)
        if baseline != state.baseline:
            actions.restart_for_new_baseline(
                self.serve_dir, self.registry, state.canary_id, baseline
            )
            self._after()
            return None
        self._before()  # the log writer flushes, so the verdict sees every finished request
        judgment = judge_now(state, self.log, self.cfg)
        actions.act(self.serve_dir, self.registry, state.canary_id, judgment.verdict, self.cfg)
        self._after()
        return judgment

    def _run(self) -> None:
        while not self._stop.wait(self.cfg.interval_s):
            try:
                self.run_once()
            except Exception:  # a failed judgment is retried next interval
                logger.exception("the canary judgment failed; retrying next interval")
                self._failed()
