"""The canary judge's statistics, its moves, and whole canaries on a live server."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from tuneloop.config import CanaryConfig
from tuneloop.flows.register import registry_for
from tuneloop.model.base import weights_sha256
from tuneloop.serve.canary import actions
from tuneloop.serve.canary.judge import ArmSample, judge
from tuneloop.serve.chat import routing_key
from tuneloop.serve.router import BASE_TARGET, CanaryRoute, Router, ServingState, Target
from tuneloop.state.canary import read_state

from support.liveserver import (
    live_server,
    register_adapter,
    serve_workspace,
    tiny_adapter,
    wait_for,
)

# The live canaries compare the arms' latency: another test's load would skew it.
pytestmark = pytest.mark.alone

CFG = CanaryConfig(min_requests=30, min_feedback=20, require_feedback=True)


def arm(
    n: int = 200,
    errors: int = 0,
    latency: float = 1.0,
    down: int = 5,
    up: int = 45,
    ratings: tuple[float, ...] = (4.0,) * 30,
    degenerate: int = 0,
    seed: int = 0,
    toxic: int = 0,
) -> ArmSample:
    rng = np.random.default_rng(seed)
    lat = tuple(float(x) for x in rng.lognormal(np.log(latency), 0.3, n - errors))
    return ArmSample(n, errors, lat, degenerate, up, down, ratings, toxic)


CASES = [
    ("same", arm(seed=1), arm(seed=2), "pass", None),
    ("errors up 10 points", arm(errors=25, seed=1), arm(seed=2), "fail", "error_rate"),
    ("errors up, within tolerance", arm(errors=1, seed=1), arm(seed=2), "pass", None),
    ("twice as slow", arm(latency=2.0, seed=1), arm(seed=2), "fail", "latency"),
    ("faster", arm(latency=0.5, seed=1), arm(seed=2), "pass", None),
    ("thumbs down 60%", arm(down=30, up=20), arm(), "fail", "thumbs_down_rate"),
    ("ratings a point lower", arm(ratings=(3.0, 3.0, 2.0) * 10), arm(ratings=(4.0, 4.0, 5.0) * 10),
     "fail", "mean_rating"),
    ("garbage answers", arm(degenerate=60, seed=1), arm(seed=2), "fail", "degenerate_rate"),
    ("toxic answers 15%", arm(toxic=30, seed=1), arm(toxic=2, seed=2), "fail", "toxic_rate"),
    ("toxic answers up 1 point", arm(toxic=4, seed=1), arm(toxic=2, seed=2), "pass", None),
    ("too few requests", arm(n=10), arm(), "inconclusive", None),
    ("no feedback yet", arm(down=0, up=0, ratings=()), arm(down=0, up=0, ratings=()),
     "inconclusive", None),
    ("no traffic at all", ArmSample(), ArmSample(), "inconclusive", None),
    ("every user dislikes it, production has no thumbs yet", arm(down=29, up=0),
     arm(down=0, up=0, ratings=()), "fail", "thumbs_down_ceiling"),
    ("disliked, but not decisively above the ceiling", arm(down=12, up=8),
     arm(down=0, up=0, ratings=()), "inconclusive", None),
]  # fmt: skip


@pytest.mark.parametrize(("canary", "production", "decision", "failing"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])  # fmt: skip
def test_judge(
    canary: ArmSample, production: ArmSample, decision: str, failing: str | None
) -> None:
    verdict = judge(canary, production, CFG)
    assert verdict.decision == decision, verdict.reasons
    failed = [m.name for m in verdict.metrics if m.status == "fail"]
    assert failed == ([failing] if failing else [])


def test_feedback_is_optional_when_not_required() -> None:
    quiet = arm(down=0, up=0, ratings=())
    assert (
        judge(quiet, quiet, CFG.model_copy(update={"require_feedback": False})).decision == "pass"
    )


def test_a_canary_no_different_from_production_rarely_fails() -> None:
    """200 analyses of two samples from one distribution: false alarms stay near alpha or below."""

    def sample(rng: random.Random, seed: int) -> ArmSample:
        n = 120
        errs = sum(rng.random() < 0.02 for _ in range(n))
        downs = sum(rng.random() < 0.2 for _ in range(60))
        ratings = tuple(float(rng.choice([2, 3, 4, 4, 5])) for _ in range(40))
        return arm(n=n, errors=errs, down=downs, up=60 - downs, ratings=ratings, seed=seed)

    fails = 0
    for seed in range(200):
        rng = random.Random(seed)
        fails += judge(sample(rng, 2 * seed), sample(rng, 2 * seed + 1), CFG).decision == "fail"
    assert fails <= 10  # alpha = 5%, shared by the seven metrics


def test_users_stay_on_their_arm_and_the_split_follows_the_weight() -> None:
    router = Router("salt", "tiny")
    target = Target("2", "v2-abc", "abc")
    router.state = ServingState(BASE_TARGET, CanaryRoute(target, 30.0, "c1"))
    users = [f"t:user{i}" for i in range(2000)]
    first = {u: router.route("production", u).arm for u in users}
    assert all(router.route("production", u).arm == first[u] for u in users[:200])
    share = sum(a == "canary" for a in first.values()) / len(users)
    assert 0.26 < share < 0.34
    router.state = ServingState(BASE_TARGET, CanaryRoute(target, 60.0, "c1"))
    moved = {u: router.route("production", u).arm for u in users}
    assert all(moved[u] == "canary" for u in users if first[u] == "canary")  # nobody goes back


def test_routing_keys_user_then_conversation_then_random() -> None:
    assert routing_key("t", "u1", "c1") == ("t:u1", "user")  # the user's arm, as before
    assert routing_key("t", None, "c1") == ("t:conversation:c1", "conversation")
    key, how = routing_key("t", None, None)
    assert how == "random" and key != routing_key("t", None, None)[0]


def test_a_conversation_stays_on_one_arm(tmp_path: Path, tiny_talker: Path) -> None:
    base = tiny_talker
    ws = serve_workspace(tmp_path / "ws", base, min_requests=10_000, min_feedback=10_000)
    sha = weights_sha256(base)
    v1, v2 = (register_adapter(ws, tiny_adapter(base, tmp_path / f"a{i}", seed=i), sha,
                               str(base)).version for i in (1, 2))  # fmt: skip
    registry_for(ws).promote(v1)
    actions.start(ws.serve_dir, registry_for(ws), v2, 50, 10, 50, index_version=None)
    with live_server(ws, base) as (url, services):
        wait_for(lambda: services.router.state.canary is not None)

        def arms(how: dict[str, Any]) -> list[tuple[str, str]]:
            out = []
            for i in range(8):
                r = httpx.post(f"{url}/v1/chat/completions", headers=how.get("headers", {}),
                               json={"messages": [{"role": "user", "content": f"hi {i}"}],
                                     "max_tokens": 1, **how.get("body", {})})  # fmt: skip
                out.append((r.headers["x-tuneloop-arm"], r.headers["x-tuneloop-routing"]))
            return out

        for n in range(6):  # with a 50% canary, six conversations on one arm each
            header = arms({"headers": {"X-Tuneloop-Conversation": f"conv-{n}"}})
            body = arms({"body": {"metadata": {"conversation_id": f"conv-{n}"}}})
            assert len(set(header)) == 1 and header == body
            assert header[0][1] == "conversation"
        assert {how for _, how in arms({})} == {"random"}


def test_router_overhead_is_microseconds() -> None:
    router = Router("salt", "tiny")
    router.state = ServingState(BASE_TARGET, CanaryRoute(Target("2", "n", "s"), 30.0, "c1"))
    start = time.perf_counter()
    for i in range(10_000):
        router.route("production", f"u{i}")
    assert (time.perf_counter() - start) / 10_000 < 1e-3


# --- whole canaries on a live server --------------------------------------------------------------


def canary_server(tmp: Path, base: Path) -> tuple[Any, Path, list[str]]:
    ws = serve_workspace(tmp / "ws", base, interval=0.3, min_requests=15, min_feedback=10)
    sha = weights_sha256(base)
    versions = [register_adapter(ws, tiny_adapter(base, tmp / f"a{i}", seed=i), sha, str(base))
                for i in (1, 2)]  # fmt: skip
    registry_for(ws).promote(versions[0].version)
    return ws, base, [v.version for v in versions]


def traffic(url: str, ws: Any, users: int, canary_feedback: str, until: Any) -> dict[str, int]:
    """Simulated users: they like production's answers and give the canary ``canary_feedback``."""
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    arms = {"production": 0, "canary": 0}
    deadline = time.monotonic() + 120
    i = 0
    while not until() and time.monotonic() < deadline:
        user = f"user{i % users}"
        i += 1
        raw = client.chat.completions.with_raw_response.create(
            model="production", messages=[{"role": "user", "content": f"reset {i}"}],
            max_tokens=2, user=user,
        )  # fmt: skip
        a = raw.headers["x-tuneloop-arm"]
        arms[a] += 1
        thumbs = canary_feedback if a == "canary" else ("down" if i % 7 == 0 else "up")
        httpx.post(f"{url}/v1/feedback", json={"response_id": raw.parse().id, "thumbs": thumbs})
    return arms


def test_a_canary_users_dislike_is_rolled_back_by_itself(tmp_path: Path, tiny_talker: Path) -> None:
    ws, base, (v1, v2) = canary_server(tmp_path, tiny_talker)
    with live_server(ws, base) as (url, _):
        wait_for(lambda: httpx.get(f"{url}/readyz").json().get("production") == f"v{v1}")
        actions.start(
            ws.serve_dir,
            registry_for(ws),
            v2,
            weight=50,
            step=25,
            max_weight=100,
            index_version=None,
        )
        done = lambda: (s := read_state(ws.serve_dir)) is not None and not s.running  # noqa: E731
        arms = traffic(url, ws, users=40, canary_feedback="down", until=done)
        state = read_state(ws.serve_dir)
        assert state is not None and state.status == "rolled_back", state
        assert "thumbs_down_rate" in (state.ended_reason or "")
        wait_for(
            lambda: "canary" not in {m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]}
        )
    registry = registry_for(ws)
    assert "canary" not in registry.aliases() and registry.aliases()["production"] == v1
    events = [e["action"] for e in registry.audit()]
    assert events.count("canary_verdict") >= CanaryConfig().failure_threshold
    assert "canary_rollback" in events and arms["canary"] > 0
    tag = registry.client.get_model_version("tuneloop", v2).tags["canary_verdict"]
    assert '"rolled_back"' in tag and "thumbs_down_rate" in tag


def test_a_good_canary_steps_up_and_is_promoted(tmp_path: Path, tiny_talker: Path) -> None:
    ws, base, (v1, v2) = canary_server(tmp_path, tiny_talker)
    with live_server(ws, base) as (url, _):
        wait_for(lambda: httpx.get(f"{url}/readyz").json().get("production") == f"v{v1}")
        actions.start(
            ws.serve_dir,
            registry_for(ws),
            v2,
            weight=40,
            step=30,
            max_weight=100,
            index_version=None,
        )
        done = lambda: (s := read_state(ws.serve_dir)) is not None and not s.running  # noqa: E731
        traffic(url, ws, users=40, canary_feedback="up", until=done)
        state = read_state(ws.serve_dir)
        assert state is not None and state.status == "promoted", state
        weights = [h["weight"] for h in state.history if h["event"] in ("start", "step")]
        assert weights == [40, 70, 100]
        wait_for(lambda: httpx.get(f"{url}/readyz").json()["production"] == f"v{v2}")
    registry = registry_for(ws)
    assert registry.aliases()["production"] == v2 and registry.aliases()["previous"] == v1
    assert "canary_promote" in [e["action"] for e in registry.audit()]


def test_zero_traffic_never_promotes(tmp_path: Path, tiny_talker: Path) -> None:
    ws, base, (v1, v2) = canary_server(tmp_path, tiny_talker)
    with live_server(ws, base) as (url, services):
        wait_for(lambda: httpx.get(f"{url}/readyz").json().get("production") == f"v{v1}")
        actions.start(
            ws.serve_dir,
            registry_for(ws),
            v2,
            weight=50,
            step=50,
            max_weight=100,
            index_version=None,
        )
        wait_for(lambda: (read_state(ws.serve_dir) or Any).judgments >= 3, timeout=30)
        assert services.controller is not None
        judged = services.controller.run_once()
    state = read_state(ws.serve_dir)
    assert state is not None and state.running and state.weight == 50
    assert judged is not None and judged.verdict.decision == "inconclusive"


def test_a_newer_candidate_restarts_the_analysis(tmp_path: Path, tiny_talker: Path) -> None:
    ws, base, (v1, v2) = canary_server(tmp_path, tiny_talker)
    v3 = register_adapter(ws, tiny_adapter(base, tmp_path / "a3", seed=3), weights_sha256(base),
                          str(base)).version  # fmt: skip
    registry = registry_for(ws)
    first = actions.start(
        ws.serve_dir, registry, v2, weight=10, step=10, max_weight=50, index_version=None
    )
    second = actions.start(
        ws.serve_dir, registry, v3, weight=10, step=10, max_weight=50, index_version=None
    )
    assert second.canary_id != first.canary_id and second.version == v3
    assert registry.aliases()["canary"] == v3
    assert "canary_replaced" in [e["action"] for e in registry.audit()]
    with pytest.raises(Exception, match="production already"):
        actions.start(
            ws.serve_dir, registry, v1, weight=10, step=10, max_weight=50, index_version=None
        )


def test_the_canary_commands(tmp_path: Path, tiny_talker: Path) -> None:
    from support.clirun import run

    ws, _, (v1, v2) = canary_server(tmp_path, tiny_talker)
    started = run("canary", "start", f"v{v2}", "--weight", "20", "--max-weight", "60", "-w",
                  ws.root, cwd=tmp_path)  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert f"canary v{v2} vs v{v1} at 20% of users" in started.stdout
    status = run("canary", "status", "-w", ws.root, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "error_rate" in status.stdout and "inconclusive" in status.stdout
    stopped = run("canary", "stop", "-w", ws.root, cwd=tmp_path)
    assert stopped.returncode == 0 and "every user is on production" in stopped.stdout
    again = run("canary", "stop", "-w", ws.root, cwd=tmp_path)
    assert again.returncode == 2 and "no canary is running" in again.stderr
    assert "canary" not in registry_for(ws).aliases()
    unknown = run("canary", "start", "v99", "-w", ws.root, cwd=tmp_path)
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1


def test_status_of_an_ended_canary_shows_the_verdict_it_ended_on(
    tmp_path: Path, tiny_talker: Path
) -> None:
    """One verdict: the one that rolled it back, its p value in the reason and the table alike,
    not a second judgment of whatever the log holds by the time someone looks."""
    from tuneloop.serve.canary.judge import MetricResult, Verdict

    from support.clirun import run

    ws, _, (_, v2) = canary_server(tmp_path, tiny_talker)
    state = actions.start(ws.serve_dir, registry_for(ws), v2, weight=20, step=10, max_weight=60,
                          index_version=None)  # fmt: skip
    worse = MetricResult("thumbs_down_rate", "fail", 0.1, 0.4, 50, 50, 0.0012, "canary +0.300")
    verdict = Verdict("fail", [worse], ["thumbs_down_rate worse on the canary: p = 0.0012"])
    cfg = CanaryConfig(failure_threshold=1)
    ended = actions.act(ws.serve_dir, registry_for(ws), state.canary_id, verdict, cfg)
    assert ended is not None and ended.status == "rolled_back"
    status = run("canary", "status", "-w", ws.root, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "last verdict: fail — thumbs_down_rate worse on the canary: p = 0.0012" in status.stdout
    assert status.stdout.count("0.0012") == 2  # the reason and the table's p column
    assert "inconclusive" not in status.stdout  # the empty log is not judged again


def test_served_answers_are_scored_for_toxicity_from_the_log() -> None:
    """The stand-in classifier (tests/support/toxicity.py) reads "stupid idiot" as toxic."""
    from tuneloop.serve.canary.judge import is_toxic

    row = {"status": "ok", "latency_s": 0.1, "degenerate": 0, "thumbs": None, "rating": None}
    rows = [
        {**row, "answer": "You stupid idiot, I hate you!"},
        {**row, "answer": "Thanks!"},
        {**row, "answer": None},
        {**row, "status": "error", "answer": "idiot idiot"},
    ]
    assert is_toxic("You stupid idiot, I hate you!") and not is_toxic("Thanks!")
    assert ArmSample.from_rows(rows).toxic == 1


def test_without_the_classifier_toxicity_is_inconclusive_not_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tuneloop.errors import TuneloopError
    from tuneloop.serve.canary import judge as judge_module

    def unavailable() -> None:
        raise TuneloopError("could not download hatesonar==0.1.0 from the package index")

    monkeypatch.setattr(judge_module, "cached_scorer", unavailable)
    judge_module.is_toxic.cache_clear()
    row = {"status": "ok", "latency_s": 0.1, "degenerate": 0, "thumbs": "up", "rating": None}
    sample = ArmSample.from_rows([{**row, "answer": f"answer {i}"} for i in range(60)])
    assert sample.toxic is None
    verdict = judge(sample, sample, CFG)
    (toxic,) = [m for m in verdict.metrics if m.name == "toxic_rate"]
    assert toxic.status == "inconclusive" and "tuneloop models fetch" in toxic.detail
    assert verdict.decision != "pass"
