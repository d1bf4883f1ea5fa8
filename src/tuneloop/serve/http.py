"""Read timeouts for uvicorn: a client that sends its request too slowly is cut off.

uvicorn times nothing while it waits for a request: its keep-alive timer starts only after a
response, and an app's middleware runs only once the headers are in, so 350 half-sent requests
were held open for as long as their clients liked (and shutdown waited on them). Hypercorn's
``read_timeout`` also cut long responses (an SSE stream at 2 s); granian has a header timeout
but none for the body. So the server keeps uvicorn and its httptools protocol, with three clocks
that run only while the server waits on the client, never while it answers:

* ``header_timeout_s``: from the connection (or the previous response) to the end of the
  headers, not restarted by trickled bytes;
* ``body_timeout_s``: between two chunks of the body;
* ``body_total_timeout_s``: the whole body.

A request that runs out of time gets a 408 and its connection is closed (an idle connection is
closed silently, as keep-alive expiry does). When the server itself stopped reading (back
pressure, a pipelined request, an app that has not asked for a ``100-continue`` body yet) the
clock restarts instead of blaming the client.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("tuneloop.serve.http")
TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 15\r\nconnection: close\r\n\r\nRequest Timeout"
)


class TimedProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    body_total_timeout: float | None = 60.0

    _clock: asyncio.TimerHandle | None = None
    _phase: str | None = None  # "headers", "body", "ws", or None: not waiting on the client
    _received = 0  # bytes since the header phase began
    _deadline: float | None = None

    def _stop_clock(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None

    def _start(self, phase: str | None) -> None:
        self._stop_clock()
        self._phase = phase
        if phase == "headers":
            self._received = 0
            self._clock = self.loop.call_later(self.header_timeout, self._expired)
        elif phase == "body":
            now = self.loop.time()
            if self._deadline is None and self.body_total_timeout is not None:
                self._deadline = now + self.body_total_timeout
            delay = self.body_timeout
            if self._deadline is not None:
                delay = min(delay, self._deadline - now)
            self._clock = self.loop.call_later(max(delay, 0.0), self._expired)
        else:
            self._deadline = None

    def _ours(self) -> bool:
        """The server, not the client, is why nothing arrives."""
        waiting = self._phase == "body" and bool(getattr(self.cycle, "waiting_for_100_continue", 0))
        return bool(self.flow.read_paused) or waiting

    def _expired(self) -> None:
        self._clock = None
        if self.transport.is_closing():
            return
        if self._ours():
            self._deadline = None
            delay = self.body_timeout if self._phase == "body" else self.header_timeout
            self._clock = self.loop.call_later(delay, self._expired)
            return
        if self._phase == "headers":
            answer = self._received > 0  # 0 bytes: an idle connection, closed silently
        else:
            answer = self.cycle is not None and not self.cycle.response_started
        if answer:
            self.transport.write(TIMED_OUT)
        log.info("%s: request %s not received in time; connection closed", self.client, self._phase)
        self._phase = None
        self.transport.close()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._start("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._stop_clock()
        self._phase = "ws"
        super().handle_websocket_upgrade()

    def data_received(self, data: bytes) -> None:
        self._received += len(data)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self._phase != "ws":
            self._start("body")  # stopped at once by on_message_complete when there is none

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._start("body")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._start(None)
        if self.cycle is not None and self.cycle.response_complete and not self.pipeline:
            self._start("headers")  # answered before the body was read: wait for the next one

    def on_response_complete(self) -> None:
        idle = not self.pipeline and self._phase is None
        super().on_response_complete()
        if idle and not self.transport.is_closing():
            self._start("headers")


def timed_protocol(header_s: float, body_s: float, body_total_s: float | None) -> type:
    """uvicorn's ``http=`` protocol class, with these read timeouts."""
    return type(
        "TimedProtocol",
        (TimedProtocol,),
        {"header_timeout": header_s, "body_timeout": body_s, "body_total_timeout": body_total_s},
    )


def server_options(app: Any) -> dict[str, Any]:
    """uvicorn's settings for an app of ``create_app``: the read timeouts of its config."""
    cfg = app.state.services.cfg
    http = timed_protocol(cfg.header_timeout_s, cfg.body_timeout_s, cfg.body_total_timeout_s)
    return {"http": http, "timeout_keep_alive": min(5, cfg.header_timeout_s)}
