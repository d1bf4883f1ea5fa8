"""The API as a client sees it: the real ``openai`` library against a live server on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tuneloop.serve.services import Services

from support.liveserver import held_worker, tiny_server, wait_for

HELLO = [{"role": "user", "content": "please reset my password"}]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_talker: Path
) -> Iterator[tuple[str, Services]]:
    with tiny_server(tmp_path_factory.mktemp("api"), tiny_talker) as served:
        yield served


@pytest.fixture
def client(server: tuple[str, Services]) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server[0]}/v1", api_key="unused", max_retries=0)


def test_a_completion_names_its_model_and_counts_its_tokens(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="production", messages=HELLO, max_tokens=6, temperature=0, user="u1"
    )
    r = raw.parse()
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.model == "base"  # no production alias yet: the base model is production
    assert raw.headers["x-tuneloop-arm"] == "production"
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage is not None and 0 < r.usage.completion_tokens <= 6
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streaming_gives_the_same_answer_and_usage_last(client: openai.OpenAI) -> None:
    full = client.chat.completions.create(model="base", messages=HELLO, max_tokens=7, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model="base",
            messages=HELLO,
            max_tokens=7,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage == full.usage


def test_sse_ends_with_done(server: tuple[str, Services]) -> None:
    body = {"messages": HELLO, "max_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{server[0]}/v1/chat/completions", json=body) as response:
        lines = [line for line in response.iter_lines() if line]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)


def test_models_lists_production_and_the_base(client: openai.OpenAI) -> None:
    ids = {m.id: m for m in client.models.list()}
    assert {"production", "base"} <= set(ids)


CASES: list[tuple[str, str, Any, int, str | None]] = [
    ("malformed json", "/v1/chat/completions", b'{"messages": [', 400, "invalid_request"),
    ("unknown model", "/v1/chat/completions", {"model": "v99", "messages": HELLO}, 404,
     "model_not_found"),
    ("prompt over the context", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": "reset " * 400}]}, 400, "context_length_exceeded"),
    ("max_tokens over the context", "/v1/chat/completions",
     {"messages": HELLO, "max_tokens": 100000}, 400, "invalid_max_tokens"),
    ("max_tokens zero", "/v1/chat/completions", {"messages": HELLO, "max_tokens": 0}, 400,
     "invalid_request"),
    ("temperature too high", "/v1/chat/completions", {"messages": HELLO, "temperature": 5}, 400,
     "invalid_request"),
    ("too many choices", "/v1/chat/completions", {"messages": HELLO, "n": 17}, 400,
     "invalid_request"),
    ("a seed past 64 bits", "/v1/chat/completions", {"messages": HELLO, "seed": 2**70}, 400,
     "invalid_request"),
    ("a penalty past OpenAI's range", "/v1/chat/completions",
     {"messages": HELLO, "presence_penalty": 50}, 400, "invalid_request"),
    ("a bias past OpenAI's range", "/v1/chat/completions",
     {"messages": HELLO, "logit_bias": {"5": 101}}, 400, "invalid_request"),
    ("a bias for a token the model lacks", "/v1/chat/completions",
     {"messages": HELLO, "logit_bias": {"9999999": 1}}, 400, "invalid_request"),
    ("a bias keyed by a word", "/v1/chat/completions",
     {"messages": HELLO, "logit_bias": {"hello": 1}}, 400, "invalid_request"),
    ("top_logprobs without logprobs", "/v1/chat/completions",
     {"messages": HELLO, "top_logprobs": 3}, 400, "invalid_request"),
    ("too many top_logprobs", "/v1/chat/completions",
     {"messages": HELLO, "logprobs": True, "top_logprobs": 21}, 400, "invalid_request"),
    ("an unknown field", "/v1/chat/completions", {"messages": HELLO, "temprature": 0}, 400,
     "invalid_request"),
    ("a field not honoured", "/v1/chat/completions",
     {"messages": HELLO, "functions": [{"name": "f"}]}, 400, "invalid_request"),
    ("a tool of another kind", "/v1/chat/completions",
     {"messages": HELLO, "tools": [{"type": "retrieval"}]}, 400, "invalid_request"),
    ("a tool with a bad name", "/v1/chat/completions",
     {"messages": HELLO, "tools": [{"type": "function", "function": {"name": "a b"}}]}, 400,
     "invalid_request"),
    ("no messages", "/v1/chat/completions", {"messages": []}, 400, "invalid_request"),
    ("a bad role", "/v1/chat/completions", {"messages": [{"role": "bot", "content": "x"}]}, 400,
     "invalid_request"),
    ("an oversized body", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": "x" * 70000}]}, 413, "body_too_large"),
    ("feedback for an unknown response", "/v1/feedback",
     {"response_id": "chatcmpl-nope", "thumbs": "down"}, 404, "response_not_found"),
    ("empty feedback", "/v1/feedback", {"response_id": "x"}, 400, "invalid_request"),
    ("thumbs sideways", "/v1/feedback", {"response_id": "x", "thumbs": "sideways"}, 400,
     "invalid_request"),
    ("a lone surrogate", "/v1/chat/completions",
     b'{"messages": [{"role": "user", "content": "hi \\ud95b there"}]}', 400, "invalid_request"),
    ("a lone surrogate in feedback", "/v1/feedback",
     b'{"response_id": "x", "comment": "\\udc00"}', 400, "invalid_request"),
    ("an unknown route", "/v1/embeddings", {"input": "x"}, 404, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "payload", "status", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_gets_a_4xx_in_the_openai_shape(
    server: tuple[str, Services], path: str, payload: Any, status: int, code: str | None
) -> None:
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    r = httpx.post(
        f"{server[0]}{path}", content=content, headers={"content-type": "application/json"}
    )
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and len(error["message"]) > 10
    assert httpx.get(f"{server[0]}/healthz").status_code == 200  # and it keeps serving


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("seed", 2**70, "9223372036854775807"),
        ("temperature", 2.5, "2"),
        ("top_p", 1.5, "1"),
        ("presence_penalty", 50, "2"),
        ("frequency_penalty", -3, "-2"),
        ("n", 0, "1"),
        ("max_tokens", 0, "1"),
        ("top_logprobs", 21, "20"),
    ],
)
def test_a_bad_parameter_is_named_with_its_range(
    server: tuple[str, Services], field: str, value: Any, says: str
) -> None:
    body = {"messages": HELLO, field: value, "logprobs": True}
    r = httpx.post(f"{server[0]}/v1/chat/completions", json=body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == field and says in error["message"], error


def test_explicit_nulls_mean_the_defaults(
    client: openai.OpenAI, server: tuple[str, Services]
) -> None:
    nulls = dict.fromkeys(
        ["temperature", "top_p", "n", "stream", "seed", "stop", "presence_penalty",
         "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "user", "tools",
         "tool_choice", "response_format", "stream_options", "max_tokens"]
    )  # fmt: skip
    r = httpx.post(f"{server[0]}/v1/chat/completions", json={"messages": HELLO, **nulls})
    assert r.status_code == 200, r.text
    assert len(r.json()["choices"]) == 1


def test_client_error_classes(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(model="v42", messages=HELLO)
    with pytest.raises(openai.BadRequestError, match="context"):
        client.chat.completions.create(model="base", messages=HELLO, max_tokens=10**6)


def test_feedback_is_logged_and_counted(
    server: tuple[str, Services], client: openai.OpenAI
) -> None:
    url, services = server
    r = client.chat.completions.create(model="base", messages=HELLO, max_tokens=3, user="fb-user")
    ok = httpx.post(
        f"{url}/v1/feedback",
        json={"response_id": r.id, "thumbs": "down", "rating": 2, "correction": "Use the app."},
    )
    assert ok.status_code == 200 and ok.json()["response_id"] == r.id
    services.writer.flush()
    logged = services.log.response(r.id)
    assert logged is not None and logged["user_id"] == "fb-user" and logged["arm"] == "base"
    assert json.loads(logged["messages_json"]) == HELLO and logged["completion_tokens"] >= 1
    assert services.log.feedback_for([r.id])[r.id][0]["correction"] == "Use the app."
    metrics = httpx.get(f"{url}/metrics").text
    assert 'tuneloop_feedback_total{arm="base",kind="thumbs_down",model_version="base"}' in metrics
    out = httpx.post(f"{url}/v1/feedback", json={"response_id": r.id, "rating": 9})
    assert out.status_code == 400 and "outside 1..5" in out.json()["error"]["message"]


def test_metrics_carry_latency_and_ttft_histograms_by_arm(server: tuple[str, Services]) -> None:
    body = {"messages": HELLO, "max_tokens": 2}  # a request of its own: the labels appear with one
    assert httpx.post(f"{server[0]}/v1/chat/completions", json=body).status_code == 200
    text = httpx.get(f"{server[0]}/metrics").text
    for name in (
        "tuneloop_request_latency_seconds_bucket",
        "tuneloop_time_to_first_token_seconds",
        "tuneloop_tokens_total",
        "tuneloop_requests_total",
        "tuneloop_queue_waiting",
    ):
        assert name in text
    assert 'arm="production",model_version="base"' in text


def test_a_client_that_disconnects_mid_stream_frees_its_slot(
    server: tuple[str, Services],
) -> None:
    url, services = server
    body = {"messages": HELLO, "max_tokens": 200, "stream": True, "user": "leaver"}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if '"content"' in line and '""' not in line:
                break
    wait_for(lambda: services.backend.stats().running == 0, timeout=30)

    def cancelled() -> bool:
        services.writer.flush()
        rows = services.log.responses_after(0, 1e12)
        return any(r["user_id"] == "leaver" and r["status"] == "cancelled" for r in rows)

    wait_for(cancelled)


def test_health_and_readiness(server: tuple[str, Services]) -> None:
    assert httpx.get(f"{server[0]}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server[0]}/readyz").json()
    assert ready["ready"] is True and ready["production"] == "base"


def test_a_full_queue_answers_429_with_retry_after(tmp_path: Path, tiny_talker: Path) -> None:
    """The generation worker is held between two steps (a command that waits on an event), so
    nothing leaves the queue of one: the first request waits there, the other five are refused,
    then the worker is let go and the first is answered. No timing decides the outcome."""
    import asyncio

    server = tiny_server(tmp_path, tiny_talker, max_batch=1, max_queue=1)
    with server as (url, services), held_worker(services) as hold:

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=120) as c:
                body = {"messages": HELLO, "max_tokens": 60}
                first = asyncio.create_task(c.post(f"{url}/v1/chat/completions", json=body))
                while services.backend.stats().waiting < 1:
                    await asyncio.sleep(0.01)
                rest = [c.post(f"{url}/v1/chat/completions", json=body) for _ in range(5)]
                refused = await asyncio.gather(*rest)
                hold.set()
                return [await first, *refused]

        responses = asyncio.run(burst())
    codes = [r.status_code for r in responses]
    assert codes == [200, 429, 429, 429, 429, 429]
    limited = next(r for r in responses if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["type"] == "rate_limit_error"


def test_rate_limit_is_the_sdk_rate_limit_error(tmp_path: Path, tiny_talker: Path) -> None:
    """One request waits in the queue of one while the worker is held: the next is refused,
    whatever the machine's speed, and the SDK raises its own rate-limit error."""
    import threading

    with tiny_server(tmp_path, tiny_talker, max_batch=1, max_queue=1) as (url, services):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        answered: list[str | None] = []

        def ask() -> None:
            reply = client.chat.completions.create(model="base", messages=HELLO, max_tokens=5)
            answered.append(reply.choices[0].finish_reason)

        waiting = threading.Thread(target=ask)
        with held_worker(services):
            waiting.start()
            wait_for(lambda: services.backend.stats().waiting >= 1, timeout=30)
            with pytest.raises(openai.RateLimitError):
                client.chat.completions.create(model="base", messages=HELLO, max_tokens=5)
        waiting.join()
        assert answered and answered[0] in ("stop", "length")  # the waiting one, once let go


def test_logprobs_are_the_models_and_greedy_picks_the_likeliest(
    client: openai.OpenAI,
) -> None:
    r = client.chat.completions.create(
        model="base", messages=HELLO, max_tokens=6, temperature=0, logprobs=True, top_logprobs=3
    )
    choice = r.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    content = choice.logprobs.content
    assert r.usage is not None and len(content) == r.usage.completion_tokens
    for token in content:
        assert len(token.top_logprobs) == 3 and token.logprob <= 0
        assert token.top_logprobs[0].token == token.token  # greedy: the likeliest token
        assert token.top_logprobs[0].logprob == pytest.approx(token.logprob)
        ranked = [t.logprob for t in token.top_logprobs]
        assert ranked == sorted(ranked, reverse=True)
    raw = b"".join(bytes(t.bytes or []) for t in content)
    assert raw.decode("utf-8", errors="replace") == choice.message.content
    chunks = client.chat.completions.create(
        model="base", messages=HELLO, max_tokens=6, temperature=0, logprobs=True, stream=True
    )
    streamed = [t for c in chunks if c.choices and c.choices[0].logprobs
                for t in c.choices[0].logprobs.content or []]  # fmt: skip
    assert [(t.token, t.logprob) for t in streamed] == [(t.token, t.logprob) for t in content]


def test_logit_bias_forces_and_forbids_tokens(
    client: openai.OpenAI, server: tuple[str, Services]
) -> None:
    plain = client.chat.completions.create(
        model="base", messages=HELLO, max_tokens=4, temperature=0, logprobs=True
    )
    assert plain.choices[0].logprobs and plain.choices[0].logprobs.content
    first = plain.choices[0].logprobs.content[0]
    tokenizer = server[1].backend.tokenizer  # type: ignore[attr-defined]
    vocab = tokenizer.get_vocab()  # GPT-2's printable spelling of each byte, as in the test's BPE
    spell = {b: c for c, b in _byte_level_spelling().items()}
    first_id = vocab["".join(spell[b] for b in first.bytes or [])]
    forbidden = client.chat.completions.create(
        model="base", messages=HELLO, max_tokens=4, temperature=0, logprobs=True,
        logit_bias={str(first_id): -100},
    )  # fmt: skip
    assert forbidden.choices[0].logprobs and forbidden.choices[0].logprobs.content
    assert forbidden.choices[0].logprobs.content[0].bytes != first.bytes
    forced_id = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("card"))[0]
    bias = {first_id: -100.0, forced_id: 60.0}
    forced = client.chat.completions.create(
        model="base", messages=HELLO, max_tokens=8, temperature=0, logprobs=True,
        top_logprobs=20, logit_bias={str(k): v for k, v in bias.items()},
    )  # fmt: skip
    assert forced.choices[0].logprobs and forced.choices[0].logprobs.content
    ids = {bytes(t.bytes or []): i for i, t in _spelled(tokenizer).items()}

    def biased(t: Any) -> float:  # logprobs are the model's own: the bias is added to them
        return float(t.logprob) + bias.get(ids[bytes(t.bytes or [])], 0.0)

    for step in forced.choices[0].logprobs.content:
        assert biased(step) >= max(biased(t) for t in step.top_logprobs)


def _spelled(tokenizer: Any) -> dict[int, Any]:
    from tuneloop.serve.embedded.tokens import TokenText

    names = TokenText(tokenizer)
    return {i: names.logprob(i, 0.0, []) for i in range(len(tokenizer))}


def test_several_choices_each_seeded_in_turn(client: openai.OpenAI) -> None:
    def ask(n: int, seed: int) -> list[str]:
        r = client.chat.completions.create(
            model="base", messages=HELLO, max_tokens=8, temperature=1.0, seed=seed, n=n
        )
        assert [c.index for c in r.choices] == list(range(n))
        return [c.message.content or "" for c in r.choices]

    three = ask(3, 11)
    assert three == ask(3, 11)  # seeded: the same three again
    assert three == [ask(1, 11)[0], ask(1, 12)[0], ask(1, 13)[0]]
    assert len(set(three)) > 1
    chunks = client.chat.completions.create(
        model="base", messages=HELLO, max_tokens=8, temperature=1.0, seed=11, n=3, stream=True
    )
    texts = ["", "", ""]
    for chunk in chunks:
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
    assert texts == three


def _byte_level_spelling() -> dict[str, int]:
    from tuneloop.serve.embedded.tokens import _byte_decoder

    return _byte_decoder()


def test_text_completions_continue_a_raw_prompt(
    client: openai.OpenAI, server: tuple[str, Services]
) -> None:
    r = client.completions.create(
        model="base", prompt="the card was", max_tokens=6, temperature=0, logprobs=2
    )
    choice = r.choices[0]
    assert r.object == "text_completion" and r.id.startswith("cmpl-")
    assert choice.finish_reason in ("stop", "length") and choice.logprobs is not None
    assert "".join(choice.logprobs.tokens or []) == choice.text
    assert all(1 <= len(top) <= 2 for top in choice.logprobs.top_logprobs or [])  # by text
    tokenizer = server[1].backend.tokenizer  # type: ignore[attr-defined]
    assert r.usage is not None and r.usage.prompt_tokens == len(tokenizer("the card was").input_ids)
    streamed = client.completions.create(
        model="base", prompt="the card was", max_tokens=6, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == choice.text
    default = client.completions.create(model="base", prompt="the card was", temperature=0)
    assert default.usage is not None and default.usage.completion_tokens <= 16
    for bad in ({"echo": True}, {"suffix": "x"}, {"best_of": 3}, {"prompt": ["a", "b"]}):
        body = {"model": "base", "prompt": "the card", **bad}
        assert httpx.post(f"{server[0]}/v1/completions", json=body).status_code == 400


def test_one_model_and_the_responses_api(
    client: openai.OpenAI, server: tuple[str, Services]
) -> None:
    assert client.models.retrieve("base").id == "base"
    with pytest.raises(openai.NotFoundError, match="choose one of"):
        client.models.retrieve("gpt-4o")
    with pytest.raises(openai.NotFoundError, match="chat/completions"):
        client.responses.create(model="base", input="hi")
