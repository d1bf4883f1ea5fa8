"""No client holds the server for everyone else: read timeouts, per-key limits, cached pages."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from liveserver import tiny_server, wait_for

HELLO = [{"role": "user", "content": "please reset my password"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("fair")
    timeouts = {"header_timeout_s": 1.0, "body_timeout_s": 1.0, "body_total_timeout_s": 5.0}
    with tiny_server(root, **timeouts) as (url, _):
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
