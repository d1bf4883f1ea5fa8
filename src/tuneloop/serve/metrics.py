"""Prometheus metrics, labelled by arm (production, canary, pinned, base) and model version.

One registry per app, so that several servers in one process (the tests) do not share counts.
Latency buckets reach from 5 ms (a cached refusal) to two minutes (a long answer on a CPU).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tuneloop.serve.generation import BackendStats

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 120)
ARM = ("arm", "model_version")


class Metrics:
    def __init__(self, stats: Callable[[], BackendStats]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "tuneloop_requests", "chat completion requests by outcome", [*ARM, "status"], registry=r
        )
        self.errors = Counter(
            "tuneloop_request_errors",
            "requests that failed, by error code",
            [*ARM, "code"],
            registry=r,
        )
        self.latency = Histogram(
            "tuneloop_request_latency_seconds",
            "whole request",
            ARM,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "tuneloop_time_to_first_token_seconds",
            "until the first token",
            ARM,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "tuneloop_tokens", "prompt and completion tokens", [*ARM, "kind"], registry=r
        )
        self.feedback = Counter(
            "tuneloop_feedback", "feedback received, by kind", [*ARM, "kind"], registry=r
        )
        self.rejected = Counter(
            "tuneloop_rejected_requests", "refused before generation", ["code"], registry=r
        )
        self.router = Histogram(
            "tuneloop_router_seconds",
            "routing and bookkeeping per request",
            buckets=(1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.05),
            registry=r,
        )
        self.switches = Counter(
            "tuneloop_alias_switches", "alias moves followed", ["alias"], registry=r
        )
        self.switch_seconds = Histogram(
            "tuneloop_alias_switch_seconds",
            "from seeing an alias move to serving it",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.refused_adapters = Counter(
            "tuneloop_adapter_refused",
            "adapters that failed verification or loading",
            ["version"],
            registry=r,
        )
        self.background_failures = Counter(
            "tuneloop_background_failures",
            "failures of the server's background threads (follower, canary, log writer)",
            ["thread"],
            registry=r,
        )
        self.canary_weight = Gauge(
            "tuneloop_canary_weight_percent", "share of users on the canary", registry=r
        )
        running = Gauge("tuneloop_batch_running", "requests generating now", registry=r)
        waiting = Gauge("tuneloop_queue_waiting", "requests waiting for a batch slot", registry=r)
        running.set_function(lambda: stats().running)
        waiting.set_function(lambda: stats().waiting)

    def render(self) -> bytes:
        return generate_latest(self.registry)
