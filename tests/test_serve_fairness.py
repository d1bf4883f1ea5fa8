"""No client holds the server for everyone else: read timeouts, per-key limits, cached pages."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from support.liveserver import tiny_server, wait_for

HELLO = [{"role": "user", "content": "please reset my password"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_talker: Path) -> Iterator[str]:
    root = tmp_path_factory.mktemp("fair")
    timeouts = {"header_timeout_s": 1.0, "body_timeout_s": 1.0, "body_total_timeout_s": 5.0}
    with tiny_server(root, tiny_talker, **timeouts) as (url, _):
        yield url


def half_sent(url: str, with_body: bool) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
    if with_body:  # whole headers, a tenth of the body
        head += b"content-type: application/json\r\ncontent-length: 1000\r\n\r\n" + b"{" * 100
    sock.sendall(head)
    return sock


def closed(sock: socket.socket) -> bytes | None:
    """What the server sent before closing the connection, or None while it is still open."""
    sock.settimeout(0.05)
    try:
        data = sock.recv(4096)
    except TimeoutError:
        return None
    except OSError:
        return b""
    return data if data == b"" or b"408" in data else None


def test_half_sent_requests_are_closed_while_others_are_served(server: str) -> None:
    socks = [half_sent(server, with_body=i % 2 == 1) for i in range(50)]
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="x", max_retries=0)
    served = [client.chat.completions.create(model="base", messages=HELLO, max_tokens=4)
              for _ in range(5)]  # fmt: skip
    assert all(r.choices[0].finish_reason in ("stop", "length") for r in served)
    answers: dict[int, bytes] = {}

    def all_closed() -> bool:
        for i, sock in enumerate(socks):
            if i not in answers and (got := closed(sock)) is not None:
                answers[i] = got
        return len(answers) == len(socks)

    wait_for(all_closed, timeout=60)
    with_body = [answers[i] for i in range(1, 50, 2)]
    assert all(b"408" in a for a in with_body)  # a request that began is told why
    for sock in socks:
        sock.close()
    assert httpx.get(f"{server}/healthz").status_code == 200


def test_a_long_stream_is_not_cut_by_the_read_timeouts(server: str) -> None:
    """The clocks run while the server waits for a request, never while it answers one."""
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="x", max_retries=0)
    release, started = threading.Event(), threading.Event()
    chunks: list[Any] = []

    def slow_reader() -> None:
        for chunk in client.chat.completions.create(
            model="base", messages=HELLO, max_tokens=40, stream=True, temperature=0
        ):
            chunks.append(chunk)
            started.set()
            release.wait(3)  # hold the stream past the 1 s timeouts (a slow client)

    reader = threading.Thread(target=slow_reader)
    reader.start()
    assert started.wait(30)
    threading.Timer(2.5, release.set).start()
    reader.join(60)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")


def test_a_keys_limits_hold_it_alone(
    tmp_path: Path, tiny_talker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "TUNELOOP_API_KEYS", "small:tl-small:concurrent=1:prompt=40:max_tokens=8,big:tl-big"
    )
    with tiny_server(tmp_path, tiny_talker) as (url, services):
        small = openai.OpenAI(base_url=f"{url}/v1", api_key="tl-small", max_retries=0)
        big = openai.OpenAI(base_url=f"{url}/v1", api_key="tl-big", max_retries=0)
        with pytest.raises(openai.BadRequestError, match="over the 8 this key"):
            small.chat.completions.create(model="base", messages=HELLO, max_tokens=20)
        long = [{"role": "user", "content": "reset my password " * 20}]
        with pytest.raises(openai.BadRequestError, match="over the 40 this key"):
            small.chat.completions.create(model="base", messages=long, max_tokens=4)
        assert (
            small.chat.completions.create(model="base", messages=HELLO).usage.completion_tokens <= 8
        )  # type: ignore[union-attr]
        scheduler = services.backend.scheduler  # type: ignore[attr-defined]
        release = threading.Event()
        blocked = scheduler.call(lambda: release.wait(60))
        wait_for(blocked.running)  # the generation thread waits: requests stay in flight
        results: list[Any] = []
        first = threading.Thread(target=lambda: results.append(
            small.chat.completions.create(model="base", messages=HELLO, max_tokens=4)))  # fmt: skip
        other = threading.Thread(target=lambda: results.append(
            big.chat.completions.create(model="base", messages=HELLO, max_tokens=4)))  # fmt: skip
        first.start()
        other.start()
        wait_for(lambda: scheduler.stats().waiting == 2)
        with pytest.raises(openai.RateLimitError, match="1 requests running") as refused:
            small.chat.completions.create(model="base", messages=HELLO, max_tokens=4)
        assert int(refused.value.response.headers["retry-after"]) >= 1
        release.set()
        first.join(60)
        other.join(60)
        assert len(results) == 2  # the other key was never held back


def test_tokens_per_minute_are_a_sliding_window() -> None:
    from tuneloop.serve.errors import APIError
    from tuneloop.serve.limits import KeyLimits, Limiter

    limiter, clock = Limiter(), [1000.0]
    limiter._now = lambda: clock[0]
    limits = KeyLimits(tokens_per_minute=100)
    a = limiter.admit("t", limits, 60)
    with pytest.raises(APIError) as busy:
        limiter.admit("t", limits, 50)
    assert busy.value.status == 429 and busy.value.headers["Retry-After"] == "60"
    limiter.done(a, 30)  # used 30 of the 60 it reserved: 30 come back
    b = limiter.admit("t", limits, 50)
    clock[0] += 61  # a's tokens leave the window
    limiter.done(b, 50)
    limiter.admit("t", limits, 50)
    with pytest.raises(APIError, match="per minute"):
        limiter.admit("t", limits, 101)  # more than the key may ever use in a minute


def test_environment_keys_carry_limits() -> None:
    from tuneloop.errors import ConfigError
    from tuneloop.serve.auth import KeyRing
    from tuneloop.serve.limits import KeyLimits

    ring = KeyRing.load({}, {"TUNELOOP_API_KEYS": "a:tl-a:admin:tpm=500:concurrent=2"})
    who = ring.authenticate("Bearer tl-a")
    assert who.limits == KeyLimits(max_concurrent=2, tokens_per_minute=500)
    assert "admin" in who.scopes
    for bad in ("a:tl-a:tpm=0", "a:tl-a:speed=3", "a:tl-a:root"):
        with pytest.raises(ConfigError, match="NAME:KEY"):
            KeyRing.load({}, {"TUNELOOP_API_KEYS": bad})
