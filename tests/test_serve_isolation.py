"""One request's failure never ends another's.

A poisoned request joins a running batch of four streams: it fails alone, with a 500 that is
logged and counted, and the four finish with the very answers they give alone. A failed
forward pass fails the rows of that step, and the server goes on serving new requests.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tuneloop.serve.embedded.sampling import RowSampler
from tuneloop.serve.services import Services

from support.liveserver import tiny_server, wait_for

PROMPTS = ["please reset my password", "the card was lost", "what is the fee", "thank you"]
POISON_SEED = 4242
TOKENS = 120


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_talker: Path
) -> Iterator[tuple[str, Services]]:
    with tiny_server(tmp_path_factory.mktemp("isolation"), tiny_talker, max_batch=8) as served:
        yield served


def no_end(services: Services) -> dict[str, float]:
    """A bias that keeps every row running to max_tokens: rows must outlive the poison."""
    eos = services.backend.tokenizer.eos_token_id  # type: ignore[attr-defined]
    return {str(eos): -100.0}


def ask(client: openai.OpenAI, services: Services, prompt: str) -> str:
    r = client.chat.completions.create(
        model="base", messages=[{"role": "user", "content": prompt}], max_tokens=TOKENS,
        temperature=0, logit_bias=no_end(services),
    )  # fmt: skip
    return r.choices[0].message.content or ""


def stream(client: openai.OpenAI, services: Services, prompt: str, out: dict[str, Any]) -> None:
    chunks = client.chat.completions.create(
        model="base", messages=[{"role": "user", "content": prompt}], max_tokens=TOKENS,
        temperature=0, logit_bias=no_end(services), stream=True,
    )  # fmt: skip
    parts, finish = [], None
    try:
        for chunk in chunks:
            if chunk.choices:
                parts.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
    except openai.APIError as exc:  # the stream's error event
        out["error"] = exc
    out["text"], out["finish"] = "".join(parts), finish


class Hold:
    """Stops the generation thread once, between two steps, when ``when`` holds."""

    def __init__(self, scheduler: Any, when: Any) -> None:
        self.held, self.release = threading.Event(), threading.Event()
        step = scheduler._step

        def held_step() -> None:
            step()
            if not self.held.is_set() and when():
                self.held.set()
                self.release.wait(60)

        scheduler._step = held_step
        self._scheduler, self._step = scheduler, step

    def undo(self) -> None:
        self.release.set()
        self._scheduler._step = self._step


def run_four(
    client: openai.OpenAI, services: Services
) -> tuple[list[threading.Thread], list[dict[str, Any]]]:
    """Four streams, admitted in one step: the generation thread waits until all are queued."""
    scheduler = services.backend.scheduler  # type: ignore[attr-defined]
    release = threading.Event()
    blocked = scheduler.call(lambda: release.wait(60))
    wait_for(blocked.running)
    results: list[dict[str, Any]] = [{} for _ in PROMPTS]
    threads = [
        threading.Thread(target=stream, args=(client, services, p, out))
        for p, out in zip(PROMPTS, results, strict=True)
    ]
    for t in threads:
        t.start()
    wait_for(lambda: scheduler.stats().waiting == len(PROMPTS))
    release.set()
    return threads, results


def test_a_poisoned_request_fails_alone(
    server: tuple[str, Services], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url, services = server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    alone = [ask(client, services, p) for p in PROMPTS]
    choose = RowSampler.choose

    def poisoned(self: RowSampler, *args: Any) -> int:
        if self.params.seed == POISON_SEED:
            raise ValueError("a poisoned row")
        return choose(self, *args)

    monkeypatch.setattr(RowSampler, "choose", poisoned)
    scheduler = services.backend.scheduler  # type: ignore[attr-defined]
    hold = Hold(scheduler, lambda: len(scheduler._rows) == len(PROMPTS))
    try:
        threads, results = run_four(client, services)
        assert hold.held.wait(60), "the four streams never ran together"
        outcome: dict[str, Any] = {}

        def poison() -> None:
            try:
                client.chat.completions.create(
                    model="base", messages=[{"role": "user", "content": "reset"}],
                    temperature=0.7, seed=POISON_SEED, max_tokens=5,
                )  # fmt: skip
            except openai.InternalServerError as exc:
                outcome["error"] = exc

        caplog.set_level(logging.ERROR, logger="tuneloop.serve")
        poisoner = threading.Thread(target=poison)
        poisoner.start()
        wait_for(lambda: scheduler.stats().waiting == 1)  # queued behind the held step
        hold.release.set()
        poisoner.join(60)
        for t in threads:
            t.join(60)
    finally:
        hold.undo()
    assert "a poisoned row" in str(outcome["error"])
    assert [r["text"] for r in results] == alone
    assert all(r["finish"] == "length" for r in results)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("poisoned" in r.getMessage() for r in errors)
    # the failure names its request in a field of its own (tuneloop.logs writes it out)
    named = [r for r in errors if "poisoned" in r.getMessage() and getattr(r, "request_id", "")]
    assert named and all(r.request_id in r.getMessage() for r in named)
    failed = (
        'tuneloop_request_errors_total{arm="base",code="generation_failed",model_version="base"}'
    )
    assert failed in httpx.get(f"{url}/metrics").text


def test_a_failed_forward_pass_fails_its_step_and_serving_goes_on(
    server: tuple[str, Services],
) -> None:
    url, services = server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    scheduler = services.backend.scheduler  # type: ignore[attr-defined]
    forward = scheduler._forward
    broken = threading.Event()

    def out_of_memory(jobs: Any, **inputs: Any) -> Any:
        if len(jobs) == len(PROMPTS) and inputs["input_ids"].shape[1] == 1 and not broken.is_set():
            broken.set()
            raise RuntimeError("out of memory (simulated)")
        return forward(jobs, **inputs)

    scheduler._forward = out_of_memory
    try:
        threads, results = run_four(client, services)
        for t in threads:
            t.join(60)
    finally:
        scheduler._forward = forward
    assert broken.is_set()
    assert all("out of memory" in str(r["error"]) for r in results)  # the step's rows failed
    assert ask(client, services, PROMPTS[0])  # and new requests are served


def test_a_seed_past_64_bits_fails_its_own_request_at_validation(
    server: tuple[str, Services],
) -> None:
    url, _ = server
    r = httpx.post(f"{url}/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "hi"}], "temperature": 1, "seed": 2**70,
    })  # fmt: skip
    assert r.status_code == 400 and r.json()["error"]["param"] == "seed"
