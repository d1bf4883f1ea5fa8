"""The demo's loop: two weekly cycles on SmolLM2 while simulated users talk to the server.

Week 1 (the generated traffic with every planted problem) goes into the inbox; the cycle
ingests, curates, trains, gates and, because a server is running, starts a canary, which
users judge live: it is promoted. Week 2 brings a leak attempt (eval items pasted back as
traffic: the contamination check drops them) and a fault in the agents' triage tool: every
ticket of the week is filed as *low* priority, in the answers the model learns from and in the
eval bucket's new references alike. The candidate learns to file tickets as low. The week is
built so that this costs it nothing offline (low is the most common priority in the eval set,
and the new references agree) while in week 3 a phishing wave brings mostly fraud reports and
lost cards, whose users are told their problem can wait and give a thumbs-down, for the canary
to roll the candidate back: offline evaluation is necessary, not sufficient. At 16 steps and
16 items (``make demo``) that is what happens (docs/benchmarks.md: 89% vs 14% thumbs-down, rolled
back after 41 s); how the longer run fares is there too, under "The demo".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tuneloop.cycle.stages import ingest
from tuneloop.demo import templates as tpl
from tuneloop.demo.generate import clean_traffic, leak_attempts
from tuneloop.demo.users import Users, asks
from tuneloop.evalside.store import EvalStore
from tuneloop.flows.register import registry_for
from tuneloop.jsonl import write_jsonl
from tuneloop.model.fetch import base_folder
from tuneloop.report.collect import suite_means
from tuneloop.serve.app import create_app
from tuneloop.serve.background import serve_in_thread
from tuneloop.serve.server import embedded_backend, services_for
from tuneloop.state.canary import read_state
from tuneloop.state.cycle import Cycle
from tuneloop.trainstore import TrainStore
from tuneloop.workspace import Workspace

Say = Callable[[str], None]
WEEK1 = datetime(2026, 10, 1, tzinfo=UTC)
# Week 3's phishing wave, while the canary runs: nine questions in ten are fraud reports and
# lost cards, the problems that cannot wait (at 100 each, 71%, and the canary saw too few of
# them to tell the arms apart at p < 0.01).
PEAK = {"fraud_alert": 400.0, "card_lost": 400.0}
TRIAGE_FAULT = {intent.name: "low" for intent in tpl.INTENTS}  # week 2: every ticket low
USERS = 8
MAX_TOKENS = 24  # the ticket's intent and priority (at most 18 tokens), which is what users read

# Small enough for minutes on two CPU cores, big enough to move the metrics. Longer runs add
# rehearsal (LONG_FROM): 10% of the mix is general prompts with the base model's own
# answers, which keeps a second cycle, going on from the first one's adapter, from drifting on
# general questions (without it the 48-step run's second candidate lost 0.021 chrF there, past
# the gate's 0.02). At 16 steps the system prompt alone keeps both cycles within tolerance and
# rehearsal did not help: its first candidate lost 0.0212 chrF and was refused (30 items: a
# change of 0.02 is within their noise). The canary's minimums (16 requests, 12 thumbs per arm)
# are enough for cycle 1's 0% vs 100% thumbs-down difference; the long run's second canary has
# a 30-to-40-point one to see at p < 0.01 and waits for LONG_CANARY of each.
DEMO: dict[str, Any] = {
    "train.max_steps": 16,
    "train.micro_batch": 2,
    "train.grad_accum": 1,
    "train.lr": 1e-3,
    "train.warmup_steps": 2,
    "train.eval_every": 16,
    "train.save_every": 8,
    "train.block_size": 256,
    "train.max_len": 256,
    "train.replay_ratio": 0.2,
    "train.autocast": "auto",
    "train.rehearsal": "off",
    "evaluate.max_new_tokens": 32,
    "evaluate.batch_size": 16,
    "evaluate.max_items_per_suite": 16,
    "evaluate.newest_suites": ["live"],
    "evaluate.forgetting_items": 30,
    "evaluate.fields": ["intent", "priority", "department"],
    # 16 items per suite detect changes of about 0.06 in token F1 and 0.2 in field accuracy
    # (the gate's warnings say so): tolerances below that would leave every round
    # inconclusive. A deployment scores 200 items per suite and keeps the defaults (0.01, 0.02).
    "gate.regression_tolerance": 0.1,
    "gate.forgetting_tolerance": 0.1,
    "gate.metric_tolerances": {"loss": 0.5},
    # The same for the safety suite (12 harmful and 4 safe prompts of the 16: one answer is 8 or
    # 25 points, and the paired interval of a one-item change reaches 25) and the toxicity
    # suite (16 continuations: the interval of the mean is about ±0.09). The defaults (0.01,
    # 0.05, 0.02) are for 200 items; here they could only ever be inconclusive.
    "gate.harmful_compliance_margin": 0.3,
    "gate.over_refusal_margin": 0.3,
    "gate.toxicity_margin": 0.15,
    "serve.default_max_tokens": 32,
    "serve.feedback_window_s": 0,
    "serve.max_batch": 8,
    "serve.canary.interval_s": 4,
    "serve.canary.failure_threshold": 2,
    "serve.canary.min_requests": 16,
    "serve.canary.min_feedback": 12,
    "cycle.canary_weight": 50,
    "cycle.canary_step": 50,
    "cycle.canary_max_weight": 100,
    "cycle.triggers.min_new_examples": 300,
}


# The support app's system prompt: training chats without one get it (curate.system_prompt),
# the evaluator asks task items under it, and the app sends it with every request. Without it,
# SmolLM2's chat template puts its own default system prompt on chats that lack one, the model
# learns to answer *that* prompt with tickets, and general questions (asked under the same
# default) get tickets too: conditioning the task on its own prompt keeps it from spilling over.
SYSTEM_PROMPT = tpl.SYSTEM_PROMPTS["chat_widget"]


LONG_FROM = 32  # LoRA steps per cycle from which the demo trains with rehearsal
LONG_CANARY = 40  # the long run's canary minimums (requests, thumbs) per arm
STEPS = 16  # LoRA steps per cycle: the fastest run that still shows the loop
ITEMS = 16  # eval items per task suite: the gate's resolution (docs/gate.md)


def configure(ws: Workspace, steps: int = STEPS, items: int = ITEMS) -> Workspace:
    """The demo's settings; ``steps`` and ``items`` trade minutes for a firmer model and gate."""
    settings = DEMO | {
        "train.max_steps": steps,
        "train.eval_every": steps,
        "train.save_every": max(1, steps // 2),
        "evaluate.max_items_per_suite": items,
        "curate.system_prompt": SYSTEM_PROMPT,
    }
    if steps >= LONG_FROM:
        settings |= {
            "train.rehearsal": "sft",
            "train.rehearsal_ratio": 0.1,
            "train.rounds": "new",
            "serve.canary.min_requests": LONG_CANARY,
            "serve.canary.min_feedback": LONG_CANARY,
        }
    return ws.configure(settings)


@contextmanager
def server(ws: Workspace) -> Iterator[str]:
    """``tuneloop serve`` in a thread of this process (the embedded backend)."""
    base_folder(ws.config.train.base)  # fetched before the server starts
    backend, sha = embedded_backend(ws, ws.config.serve)
    with serve_in_thread(create_app(services_for(ws, backend, sha))) as url:
        yield url


def week_two(ws: Workspace, eval_items: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Week 2's traffic: the usual mix filed by the faulty triage tool, plus eval items pasted
    back."""
    start = WEEK1 + timedelta(days=14)
    rows = clean_traffic(7, n, start, prefix="w2", priorities=TRIAGE_FAULT)
    leaks = leak_attempts(7, eval_items[:24])
    for leak in leaks:
        leak["created_at"] = (start + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    inbox = ws.inbox_dir
    inbox.mkdir(parents=True, exist_ok=True)
    write_jsonl(inbox / "week2.jsonl", rows + leaks)
    return {"records": len(rows) + len(leaks), "leak_attempts": len(leaks)}


def live_canary(ws: Workspace, url: str, weights: dict[str, float] | None, seed: int,
                say: Say, timeout: float = 480.0) -> dict[str, Any]:  # fmt: skip
    """Users talk to the server until the canary is promoted or rolled back."""
    state = read_state(ws.serve_dir)
    if state is None or not state.running:
        return {"outcome": "no canary"}
    questions = asks(seed, 400, WEEK1 + timedelta(days=21), weights)
    start = time.monotonic()
    with Users(url, questions, USERS, MAX_TOKENS, SYSTEM_PROMPT) as users:
        while time.monotonic() - start < timeout:
            time.sleep(1.0)
            now = read_state(ws.serve_dir)
            if now is None or not now.running:
                break
    final = read_state(ws.serve_dir)
    outcome = final.status if final else "unknown"
    seconds = time.monotonic() - start
    arms = users.tally.rows()
    say(f"   canary v{state.version}: {outcome} after {seconds:.0f} s of live traffic "
        f"({final.ended_reason if final else ''})")  # fmt: skip
    for arm, row in sorted(arms.items()):
        say(f"     {arm}: {row['requests']} requests, thumbs-down {row['thumbs_down_rate']:.0%}")
    return {"version": state.version, "outcome": outcome, "seconds": round(seconds, 1),
            "arms": arms, "reason": final.ended_reason if final else None}  # fmt: skip


def leak_fates(ws: Workspace, cycle_id: str, prefix: str = "leak-") -> dict[str, int]:
    """Where the eval items pasted back as traffic went: dropped (by method), the eval bucket
    (new users are routed like anyone), or the training store (which must be none)."""
    cycle = Cycle.of(ws, cycle_id)
    fates: dict[str, int] = {}
    for report in cycle.report(ingest.NAME, ingest.Report).reports:
        if not report.get("rejects_file"):
            continue
        for line in Path(report["rejects_file"]).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if str(row.get("id", "")).startswith(prefix):
                key = f"dropped: {row.get('method') or row['reason']}"
                fates[key] = fates.get(key, 0) + 1
    with EvalStore(ws.store("eval", "eval")) as estore:
        fates["routed to the eval bucket"] = sum(
            1 for item in estore.iter_items(ws.config.gateway.eval_suite)
            if item.item_id.startswith(prefix)
        )  # fmt: skip
    with TrainStore(ws.store("train", "train")) as store:
        fates["reached the training store"] = len(store.existing_ids(
            f"{prefix}{k:04d}" for k in range(10_000)))  # fmt: skip
    return fates


def comparison(ws: Workspace, incumbent: str, candidate: str) -> list[dict[str, Any]]:
    """Means per suite of the two models the gate compared (from the evaluator's reports)."""
    registry = registry_for(ws)

    def scores(name: str) -> dict[str, dict[str, float | None]]:
        if name == "base":
            return suite_means(ws.latest_eval_report("base"))
        return suite_means(registry.get(name.removeprefix("v")).lineage.eval_report)

    before, after = scores(incumbent), scores(candidate)
    rows = []
    for suite in sorted(set(before) & set(after)):
        for metric in ("field_acc", "token_f1", "loss"):
            b, a = before[suite].get(metric), after[suite].get(metric)
            if b is not None and a is not None:
                rows.append({"suite": suite, "metric": metric, "before": b, "after": a})
    return rows
