"""The clients teams put in front of an OpenAI-compatible server, against ours, offline.

LangChain's ChatOpenAI (invoke, stream, batch, structured output from a JSON schema, a forced
tool and one round trip) and openai-agents in chat-completions mode with one tool. The model is
a tiny one of random weights: what is checked is that every call goes through and comes back
in the shape the client parses, with structured answers valid by construction.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any, Literal

import jsonschema
import pytest

from tuneloop.serve.services import Services

from support.liveserver import tiny_server
from support.tiny import TinyModels

WEATHER = {
    "type": "object",
    "properties": {"city": {"enum": ["Paris", "Oslo"]}, "sunny": {"type": "boolean"}},
    "required": ["city", "sunny"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, tiny_models: TinyModels) -> Iterator[str]:
    base = tiny_models.get(scale=20.0, context=2048)
    with tiny_server(tmp_path_factory.mktemp("clients"), base) as (served, services):
        yield f"{served}/v1"
        assert_logged(services)


def assert_logged(services: Services) -> None:
    services.writer.flush()
    rows = services.log.responses_after(0, 1e12)
    assert rows and {r["status"] for r in rows} == {"ok"}


@pytest.fixture
def llm(url: str) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model="base", base_url=url, api_key="unused", max_retries=0,
                      max_tokens=80, temperature=0, stream_usage=True)  # fmt: skip


def test_langchain_invoke_stream_batch(llm: Any) -> None:
    answer = llm.invoke("the card was lost yesterday")
    assert isinstance(answer.content, str) and answer.usage_metadata["output_tokens"] > 0
    streamed = "".join(str(c.content) for c in llm.stream("the card was lost yesterday"))
    assert streamed == answer.content
    batch = llm.batch(["the card was lost", "what is the fee"])
    assert len(batch) == 2 and all(isinstance(m.content, str) for m in batch)


def test_langchain_structured_output_from_a_json_schema(llm: Any) -> None:
    schema = {"title": "weather", "description": "A forecast.", **WEATHER}
    found = llm.with_structured_output(schema).invoke("weather in Paris?")
    jsonschema.validate(found, WEATHER)


def test_langchain_forced_tool_and_one_round_trip(llm: Any) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage

    city = {"type": "object", "properties": {"city": {"enum": ["Paris", "Oslo"]}},
            "required": ["city"], "additionalProperties": False}  # fmt: skip
    get_weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": city,
        },
    }
    bound = llm.bind_tools([get_weather], tool_choice="get_weather")
    question = HumanMessage("weather in Paris?")
    first = bound.invoke([question])
    (call,) = first.tool_calls
    assert call["name"] == "get_weather" and call["args"]["city"] in ("Paris", "Oslo")
    result = ToolMessage(f"sunny in {call['args']['city']}", tool_call_id=call["id"])
    second = llm.bind_tools([get_weather]).invoke([question, first, result])
    assert isinstance(second.content, str)


def test_openai_agents_with_one_tool_in_chat_completions_mode(url: str) -> None:
    from agents import (
        Agent,
        ModelSettings,
        OpenAIChatCompletionsModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    asked: list[str] = []

    @function_tool
    def block_card(last4: Literal["1234", "5678"]) -> str:
        """Block the card whose number ends in these four digits."""
        asked.append(last4)
        return "blocked"

    client = AsyncOpenAI(base_url=url, api_key="unused", max_retries=0)
    agent = Agent(
        name="support", instructions="Be brief.", tools=[block_card],
        model=OpenAIChatCompletionsModel(model="base", openai_client=client),
        model_settings=ModelSettings(tool_choice="required", max_tokens=80, temperature=0),
    )  # fmt: skip
    result = asyncio.run(Runner.run(agent, "block my card ending 1234", max_turns=3))
    assert len(asked) == 1 and isinstance(result.final_output, str)
    kinds = [item.type for item in result.new_items]
    assert "tool_call_item" in kinds and "tool_call_output_item" in kinds
    json.dumps(result.final_output)  # a plain string answer
