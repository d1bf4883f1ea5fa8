"""When is a cycle due? Four checks, each logged with its numbers whether it fired or not.

- schedule: a time of the cron expression (UTC) has passed since the last cycle started;
- volume: at least ``min_new_examples`` new examples wait (stored but not yet curated, in the
  inbox, or ready in the serving log);
- drift: the new prompts differ from the last dataset's training prompts (an MMD permutation
  test, p < ``drift_alpha``; see ``drift.py``);
- quality: production's thumbs-down rate (or mean rating) over the last ``quality_window_s`` is
  significantly worse than its own earlier record (see ``quality.py``);
- erasure: production was trained on data that ``tuneloop forget`` erased since.

An unfinished cycle is always due: it is resumed. ``tuneloop cycle --if-due`` runs the checks
once (for cron, systemd timers, Kubernetes CronJobs); ``tuneloop watch`` runs them every
``interval_s``. Every evaluation is appended to ``cycles/triggers.jsonl``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from croniter import croniter

from tuneloop.config import TriggerConfig
from tuneloop.cycle.checks import Check
from tuneloop.cycle.drift import detect_drift, prompt_of
from tuneloop.cycle.quality import production_quality
from tuneloop.cycle.run import run_cycle
from tuneloop.cycle.stages.collect import (
    serving_log_pending,
    tainted_production,
    uncurated_records,
)
from tuneloop.datasets import DatasetStore
from tuneloop.errors import ConfigError
from tuneloop.flows.register import registry_for
from tuneloop.flows.serving import RESPONSES
from tuneloop.records import Record, read_records
from tuneloop.state.cycle import list_cycles
from tuneloop.state.serving_log import ServingLog
from tuneloop.trainstore import TrainStore
from tuneloop.workspace import Workspace


@dataclass(frozen=True)
class Evaluation:
    time: str
    due: bool
    reason: str
    checks: list[Check]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def trigger(self) -> dict[str, Any]:
        """What the cycle records as the reason it started."""
        fired = [c.name for c in self.checks if c.fired]
        return {"kind": "+".join(fired) or "resume", "reason": self.reason, "at": self.time}


def last_cycle_start(ws: Workspace) -> float | None:
    cycles = list_cycles(ws)
    return float(cycles[-1].meta["started_unix"]) if cycles else None


def check_schedule(cfg: TriggerConfig, last_start: float | None, now: float) -> Check:
    if not cfg.schedule:
        return Check("schedule", False, "off (no schedule set)")
    try:
        previous = croniter(cfg.schedule, datetime.fromtimestamp(now, UTC)).get_prev(float)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"cycle.triggers.schedule {cfg.schedule!r}: {exc}") from None
    when = datetime.fromtimestamp(previous, UTC).isoformat(timespec="minutes")
    numbers = {"schedule": cfg.schedule, "last_scheduled": when, "last_cycle_start": last_start}
    if last_start is None:
        return Check("schedule", True, f"no cycle has run yet; '{cfg.schedule}'", numbers)
    fired = previous > last_start
    verb = "passed since" if fired else "not passed since"
    last = datetime.fromtimestamp(last_start, UTC).isoformat(timespec="minutes")
    return Check("schedule", fired, f"'{cfg.schedule}': {when} {verb} the last cycle ({last})",
                 numbers)  # fmt: skip


def inbox_records(ws: Workspace) -> list[Record]:
    inbox = ws.inbox_dir
    if not inbox.is_dir():
        return []
    return [rec for path in sorted(inbox.glob("*.jsonl")) for _, rec in read_records(path)]


def serving_prompts(ws: Workspace, limit: int) -> list[str]:
    """Prompts of the responses the next serving-log ingest would read (at most ``limit``)."""
    if not (ws.config.cycle.serving_log and ws.has_serving_log()):
        return []
    with TrainStore(ws.store("train", "train")) as store:
        seen = store.cursor(RESPONSES)
    log = ServingLog(ws.store("serving", "train"))
    try:
        rows = log.responses_after(seen, time.time(), limit)
    finally:
        log.close()
    return ["\n".join(m["content"] for m in json.loads(r["messages_json"]) if m["role"] == "user")
            for r in rows]  # fmt: skip


def new_records(ws: Workspace) -> list[Record]:
    """Records in the training store that no dataset version has seen yet (newest last)."""
    with TrainStore(ws.store("train", "train")) as store:
        return store.newest(uncurated_records(ws))


def check_volume(cfg: TriggerConfig, stored: int, inbox: int, serving: int) -> Check:
    total = stored + inbox + serving
    numbers = {"stored_uncurated": stored, "inbox": inbox, "serving_log": serving,
               "total": total, "min_new_examples": cfg.min_new_examples}  # fmt: skip
    if not cfg.min_new_examples:
        return Check("volume", False, f"off; {total} new examples wait", numbers)
    fired = total >= cfg.min_new_examples
    detail = (f"{total} new examples ({stored} stored, {inbox} in the inbox, {serving} in the "
              f"serving log) {'≥' if fired else '<'} {cfg.min_new_examples}")  # fmt: skip
    return Check("volume", fired, detail, numbers)


def reference_prompts(ws: Workspace) -> list[str]:
    store = DatasetStore(ws.datasets_dir)
    latest = store.latest()
    return [prompt_of(r) for r in store.load(latest, split="train")] if latest else []


def check_drift(cfg: TriggerConfig, reference: list[str], current: list[str]) -> Check:
    if not cfg.drift:
        return Check("drift", False, "off")
    if not reference:
        return Check("drift", False, "not judged: no dataset version to compare with yet")
    result = detect_drift(reference, current, cfg.drift_alpha, cfg.drift_max_samples,
                          cfg.drift_min_samples)  # fmt: skip
    return Check("drift", result.drifted, result.detail, result.to_dict())


def check_quality(ws: Workspace, cfg: TriggerConfig, now: float) -> Check:
    if not cfg.quality:
        return Check("quality", False, "off")
    if not ws.has_serving_log():
        return Check("quality", False, "not judged: no serving log yet")
    return production_quality(ws, cfg, now)


def check_tainted(ws: Workspace) -> Check:
    if not ws.has_registry():
        return Check("erasure", False, "no model registered yet")
    version = tainted_production(registry_for(ws))
    if version is None:
        return Check("erasure", False, "production holds no erased data")
    policy = ws.config.cycle.on_tainted
    return Check("erasure", True, f"production v{version} was trained on data erased since "
                 f"(on_tainted = {policy})", {"production": version, "policy": policy})  # fmt: skip


def evaluate(ws: Workspace, now: float | None = None) -> Evaluation:
    """Run every check; the evaluation is due when any fired (or a cycle waits to resume)."""
    now = time.time() if now is None else now
    cfg = ws.config.cycle.triggers
    at = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
    cycles = list_cycles(ws)
    if cycles and cycles[-1].end is None:
        return Evaluation(at, True, f"{cycles[-1].id} is unfinished: resume it", [])
    stored, inbox = new_records(ws), inbox_records(ws)
    serving = serving_prompts(ws, cfg.drift_max_samples * 10)
    current = [prompt_of(r) for r in (*stored, *inbox)] + serving
    checks = [
        check_schedule(cfg, last_cycle_start(ws), now),
        check_volume(cfg, len(stored), len(inbox), serving_log_pending(ws)[0]),
        check_drift(cfg, reference_prompts(ws), current),
        check_quality(ws, cfg, now),
        check_tainted(ws),
    ]
    fired = [c for c in checks if c.fired]
    reason = "; ".join(f"{c.name}: {c.detail}" for c in fired) or "no trigger fired"
    return Evaluation(at, bool(fired), reason, checks)


def log_evaluation(ws: Workspace, evaluation: Evaluation) -> Path:
    path = ws.trigger_log_path
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(evaluation.to_dict(), default=str) + "\n")
    return path


def history(ws: Workspace) -> list[dict[str, Any]]:
    path = ws.trigger_log_path
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def run_if_due(
    ws: Workspace, say: Callable[[str], None], now: float | None = None
) -> tuple[Evaluation, dict[str, Any] | None]:
    """Evaluate the triggers, log them, and run a cycle when one fired."""
    evaluation = evaluate(ws, now)
    log_evaluation(ws, evaluation)
    for check in evaluation.checks:
        say(f"  {check.name}: {'FIRED' if check.fired else 'quiet'} — {check.detail}")
    if not evaluation.due:
        return evaluation, None
    return evaluation, run_cycle(ws, evaluation.trigger(), say)
