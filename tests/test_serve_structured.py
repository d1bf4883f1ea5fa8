"""Structured outputs and tool calls by constrained decoding, on a tiny model that writes noise.

A model of random weights left to itself never writes valid JSON; constrained, every answer
that finishes follows its schema — which is what makes the test able to fail.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tuneloop.serve.services import Services
from tuneloop.serve.tools import HeldText, hermes_messages, parse

from support.liveserver import tiny_server
from support.tiny import TinyModels

HELLO = [{"role": "user", "content": "the card was lost yesterday"}]
TICKET = {
    "type": "object",
    "properties": {
        "intent": {"enum": ["card_lost", "fee", "password"]},
        "priority": {"enum": ["high", "low"]},
        "urgent": {"type": "boolean"},
    },
    "required": ["intent", "priority", "urgent"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "block_card", "description": "Block a card.",
     "parameters": {"type": "object", "properties": {"last4": {"type": "string", "pattern":
     "^[0-9]{4}$"}}, "required": ["last4"], "additionalProperties": False}}},
    {"type": "function", "function": {"name": "fee_table", "parameters": {"type": "object",
     "properties": {"country": {"enum": ["DE", "FR", "US"]}}, "required": ["country"],
     "additionalProperties": False}}},
]  # fmt: skip


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: TinyModels
) -> Iterator[tuple[str, Services]]:
    base = tiny_models.get(scale=20.0, context=2048)
    with tiny_server(tmp_path_factory.mktemp("structured"), base) as served:
        yield served  # a context for the Hermes tool prompt


@pytest.fixture
def client(server: tuple[str, Services]) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server[0]}/v1", api_key="unused", max_retries=0)


def test_unconstrained_noise_is_not_json(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="base", messages=HELLO, max_tokens=40, seed=1)
    with pytest.raises(ValueError):
        json.loads(r.choices[0].message.content or "")


def test_json_schema_answers_follow_the_schema(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="base", messages=HELLO, max_tokens=60, temperature=1.0, seed=3, n=4,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "ticket", "schema": TICKET, "strict": True}},
    )  # fmt: skip
    for choice in r.choices:
        assert choice.finish_reason == "stop"
        jsonschema.validate(json.loads(choice.message.content or ""), TICKET)


def test_json_object_answers_are_objects(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="base", messages=HELLO, max_tokens=80, temperature=0.0,
        response_format={"type": "json_object"}, logit_bias={},
    )  # fmt: skip
    text = r.choices[0].message.content or ""
    assert text.startswith("{")
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)


def test_a_required_tool_call_is_made_and_valid(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="base", messages=HELLO, max_tokens=80, tools=TOOLS, tool_choice="required",
        temperature=1.0, seed=5, parallel_tool_calls=False,
    )  # fmt: skip
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    (call,) = choice.message.tool_calls
    schema = next(t["function"]["parameters"] for t in TOOLS
                  if t["function"]["name"] == call.function.name)  # fmt: skip
    jsonschema.validate(json.loads(call.function.arguments), schema)
    assert call.id.startswith("call_") and call.type == "function"


def test_a_named_tool_is_the_one_called_streamed_or_not(client: openai.OpenAI) -> None:
    choice = {"type": "function", "function": {"name": "fee_table"}}
    r = client.chat.completions.create(
        model="base", messages=HELLO, max_tokens=60, tools=TOOLS, tool_choice=choice,
        temperature=0.0,
    )  # fmt: skip
    calls = r.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["fee_table"]
    assert json.loads(calls[0].function.arguments)["country"] in ("DE", "FR", "US")
    chunks = list(client.chat.completions.create(
        model="base", messages=HELLO, max_tokens=60, tools=TOOLS, tool_choice=choice,
        temperature=0.0, stream=True,
    ))  # fmt: skip
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert [(d.index, d.function.name if d.function else None) for d in deltas] == [
        (0, "fee_table")
    ]
    assert deltas[0].function and deltas[0].function.arguments == calls[0].function.arguments
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_a_tool_round_trip_is_accepted(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(
        model="base", messages=HELLO, max_tokens=60, tools=TOOLS, tool_choice="required",
        temperature=0.0,
    )  # fmt: skip
    call = (first.choices[0].message.tool_calls or [])[0]
    messages: list[Any] = [
        *HELLO,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "blocked"},
    ]
    second = client.chat.completions.create(
        model="base", messages=messages, max_tokens=8, tools=TOOLS, temperature=0.0
    )
    assert second.choices[0].finish_reason in ("stop", "length", "tool_calls")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"response_format": {"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"type": "object", "properties": {"a": {"type": "strnig"}}}}}},
         "response_format"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
         "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": TOOLS, "response_format": {"type": "json_object"}}, "response_format"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
    ],
)  # fmt: skip
def test_bad_structured_requests_are_400s_naming_the_field(
    server: tuple[str, Services], body: dict[str, Any], param: str
) -> None:
    r = httpx.post(f"{server[0]}/v1/chat/completions", json={"messages": HELLO, **body})
    assert r.status_code == 400, r.text
    assert param in r.json()["error"]["message"] or r.json()["error"]["param"] == param


def test_hermes_text_parses_back_and_streams_held() -> None:
    call = '{"name": "fee_table", "arguments": {"country": "DE"}}'
    text = f"Checking.\n<tool_call>\n{call}\n</tool_call>"
    content, calls = parse(text)
    assert content == "Checking." and [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("fee_table", {"country": "DE"})
    ]
    assert parse("no calls here <tool_call> half") == ("no calls here <tool_call> half", [])
    held = HeldText()
    sent = "".join(held.push(piece) for piece in ["Check", "ing.\n<tool", "_call>\n{", '"na'])
    assert sent == "Checking.\n" and held.rest().startswith("<tool_call>")
    plain = hermes_messages([{"role": "user", "content": "hi"}], TOOLS)
    assert plain[0]["role"] == "system" and '"block_card"' in plain[0]["content"]
