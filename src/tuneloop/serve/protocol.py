"""The request and response bodies of the API, as pydantic models (they make the OpenAPI schema).

Fields follow OpenAI's chat completions API, validated to OpenAI's documented ranges, so a bad
value fails its own request with a 400 naming the field before anything is queued (a seed past
64 bits once failed every running row of the batch it joined). An explicit ``null`` means the
field's default, as in OpenAI's API. A field this server does not honour is refused with a 400
naming it, never silently ignored; the few that cannot change an answer (``store``,
``service_tier`` …) are accepted and listed in :data:`IGNORED`.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

Role = Literal["system", "user", "assistant", "tool", "developer"]
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_CHOICES = 16  # OpenAI allows 128; every choice is a row of the batch here

# Fields a client may send that do not change the answer: accepted, and listed in the docs.
IGNORED = frozenset({"store", "service_tier", "prompt_cache_key", "safety_identifier"})
# Fields that would change the answer and are not honoured: a 400 naming them when not null.
REFUSED = {
    "functions": "use tools",
    "function_call": "use tool_choice",
    "audio": "this server answers in text only",
    "modalities": "this server answers in text only",
    "prediction": "predicted outputs are not supported",
    "reasoning_effort": "the served models do not reason in separate tokens",
    "web_search_options": "this server has no web search",
    "verbosity": "not supported",
}


def _unicode(text: str) -> str:
    """JSON may carry lone surrogates (\\ud800); no tokenizer or database takes them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        raise ValueError(f"not valid Unicode (lone surrogate \\u{ord(bad):04x} at {exc.start}); "
                         "send UTF-8 text") from None  # fmt: skip
    return text


Text = Annotated[str, AfterValidator(_unicode)]
NonEmpty = Annotated[str, Field(min_length=1), AfterValidator(_unicode)]


class TextPart(BaseModel):
    type: Literal["text"]
    text: Text


Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class FunctionCallIn(BaseModel):
    name: Text
    arguments: Text = "{}"

    @field_validator("arguments")
    @classmethod
    def _json(cls, value: str) -> str:
        if not value.strip():
            return "{}"
        try:
            json.loads(value)
        except ValueError:
            raise ValueError("not JSON: send the arguments as a JSON object in a string") from None
        return value


class ToolCallIn(BaseModel):
    """A call an assistant message made earlier in the conversation."""

    model_config = ConfigDict(extra="ignore")

    id: Text = ""
    type: Literal["function"] = "function"
    function: FunctionCallIn


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Role
    content: Text | list[TextPart] | None = None
    name: Text | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: Text | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.text()}
        if self.tool_calls:
            out["tool_calls"] = [c.model_dump() for c in self.tool_calls]
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        return out


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Text | None = None
    parameters: dict[str, Any] | None = Field(None, description="a JSON schema")
    strict: bool | None = None


class ToolDef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["function"]
    function: FunctionDef


class NamedFunction(BaseModel):
    name: Name


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: Name = "response"
    description: Text | None = None
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type json_schema needs json_schema: {name, schema}")
        return self

    def schema_of(self) -> dict[str, Any] | None:
        """The JSON schema answers must follow (None: plain text)."""
        if self.type == "json_object":
            return {"type": "object"}
        if self.type == "json_schema" and self.json_schema is not None:
            return self.json_schema.json_schema or {"type": "object"}
        return None


class StreamOptions(BaseModel):
    include_usage: bool = False


def _drop_nulls(data: Any) -> Any:
    """OpenAI's API reads an explicit null as "the default" for every optional field."""
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if v is not None}
    return data


class SamplingRequest(BaseModel):
    """What chat completions and (legacy) completions share: the model and how to sample."""

    model_config = ConfigDict(extra="allow")

    model: Text = Field("production", description="production, canary, base, or a version (v3)")
    max_tokens: int | None = Field(None, ge=1, le=INT64_MAX)
    temperature: float = Field(1.0, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float = Field(1.0, ge=0.0, le=1.0, allow_inf_nan=False,
                         description="0 keeps only the likeliest token")  # fmt: skip
    n: int = Field(1, ge=1, le=MAX_CHOICES, description="choices per request")
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: Text | list[Text] | None = None
    seed: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX, description="signed 64-bit")
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0, allow_inf_nan=False)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0, allow_inf_nan=False)
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100, allow_inf_nan=False)]] | None = (
        Field(None, max_length=300, description="token id (as a string) → bias, −100..100")
    )
    user: Text | None = Field(None, max_length=256, description="end-user id (sticky canary arm)")
    metadata: dict[Text, Text] | None = None

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        return _drop_nulls(data)

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _bias_keys(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key in value or {}:
            if not (key.isascii() and key.isdigit() and int(key) <= INT64_MAX):
                raise ValueError(f"key {key!r} is not a token id; use token ids as strings")
        return value

    @model_validator(mode="after")
    def _unknown_fields(self) -> SamplingRequest:
        for name in self.model_extra or {}:
            if name in IGNORED:
                continue
            if name in REFUSED:
                raise ValueError(f"{name} is not supported by this server ({REFUSED[name]})")
            raise ValueError(f"unknown field {name!r}; see GET /docs for the fields this takes")
        return self

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def limit(self, default: int) -> int:
        return self.max_tokens or default

    def bias(self) -> tuple[tuple[int, float], ...]:
        return tuple(sorted((int(k), float(v)) for k, v in (self.logit_bias or {}).items()))

    def logprob_count(self) -> int | None:
        """None: no log-probabilities; k: the chosen token's and its k likeliest rivals'."""
        return None


class ChatCompletionRequest(SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, le=INT64_MAX)
    logprobs: bool = False
    top_logprobs: int = Field(0, ge=0, le=20, description="needs logprobs: true")
    tools: list[ToolDef] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ChatCompletionRequest:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        last = self.messages[-1]
        if last.role == "assistant" and not last.text() and not last.tool_calls:
            raise ValueError("the last message is an empty assistant message; end with the user")
        self._check_tools()
        return self

    def limit(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default

    def logprob_count(self) -> int | None:
        return self.top_logprobs if self.logprobs else None

    def _check_tools(self) -> None:
        names = {t.function.name for t in self.tools or []}
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise ValueError(f"tool_choice names {choice.function.name!r}, which is not in tools")
        if choice == "required" and not names:
            raise ValueError("tool_choice required needs tools")
        if self.active_tools() and self.response_format and self.response_format.schema_of():
            raise ValueError("response_format with tools is not supported; send one of them")

    def active_tools(self) -> list[dict[str, Any]]:
        """The tools the model may call (none when tool_choice is none)."""
        if not self.tools or self.tool_choice == "none":
            return []
        return [t.model_dump(exclude_none=True) for t in self.tools]

    def tool_mode(self) -> str | None:
        """None (no tools), auto, required, or the name of the one function to call."""
        if not self.active_tools():
            return None
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice):
            return f"function:{choice.function.name}"
        return choice or "auto"


class CompletionRequest(SamplingRequest):
    """The legacy ``/v1/completions``: a raw prompt, continued without the chat template."""

    prompt: NonEmpty | list[NonEmpty] = Field(description="one prompt (a list of one is accepted)")
    logprobs: int | None = Field(None, ge=0, le=5, description="the top rivals per token")
    echo: bool = Field(False, description="not supported: true is refused")
    suffix: Text | None = Field(None, description="not supported")
    best_of: int | None = Field(None, ge=1, le=1, description="not supported beyond 1")

    @model_validator(mode="after")
    def _supported(self) -> CompletionRequest:
        if isinstance(self.prompt, list) and len(self.prompt) != 1:
            raise ValueError("prompt: send one prompt per request (a string)")
        if self.echo:
            raise ValueError("echo is not supported by this server; leave it false")
        if self.suffix is not None:
            raise ValueError("suffix (insertion) is not supported by this server; leave it out")
        return self

    def prompt_text(self) -> str:
        return self.prompt[0] if isinstance(self.prompt, list) else self.prompt

    def limit(self, default: int) -> int:
        return self.max_tokens or 16  # OpenAI's default for this route

    def logprob_count(self) -> int | None:
        return self.logprobs


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    response_id: Text = Field(min_length=1, max_length=128)
    thumbs: Literal["up", "down"] | None = None
    rating: float | None = Field(None, allow_inf_nan=False)
    correction: Text | None = Field(None, max_length=65_536)
    comment: Text | None = Field(None, max_length=65_536)

    @model_validator(mode="after")
    def _something(self) -> FeedbackRequest:
        if (self.thumbs, self.rating, self.correction, self.comment) == (None,) * 4:
            raise ValueError("give at least one of thumbs, rating, correction, comment")
        return self


class FeedbackResponse(BaseModel):
    id: str
    object: Literal["feedback"] = "feedback"
    response_id: str
    created: int


Force = Field(
    None,
    min_length=1,
    max_length=1000,
    description="do it although the version may not serve, and say why (kept in the audit log)",
)


class CanaryStartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Text = Field(min_length=1)
    weight: float = Field(10.0, gt=0.0, le=100.0)
    step: float = Field(10.0, gt=0.0, le=100.0)
    max_weight: float = Field(50.0, gt=0.0, le=100.0)
    force: Text | None = Force


class VersionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Text = Field(min_length=1)
    force: Text | None = Force


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Text | None = Field(None, min_length=1, description="the version; default: previous")
    expected_production: Text | None = Field(
        None,
        min_length=1,
        description="the production version the caller saw: 409 if production moved since",
    )
    force: Text | None = Force


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def completion_body(
    rid: str,
    model: str,
    choices: list[dict[str, Any]],
    usage: dict[str, int],
    fingerprint: str,
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": fingerprint,
        "choices": choices,
        "usage": usage,
    }


def chunk_body(
    rid: str,
    model: str,
    fingerprint: str,
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
    index: int = 0,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    choices = (
        []
        if delta is None
        else [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]
    )
    return {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": fingerprint,
        "choices": choices,
        "usage": usage,
    }


def usage_of(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
