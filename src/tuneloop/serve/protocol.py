"""The request and response bodies of the API, as pydantic models (they make the OpenAPI schema).

Fields follow OpenAI's chat completions API, validated to OpenAI's documented ranges, so a bad
value fails its own request with a 400 naming the field before anything is queued (a seed past
64 bits once failed every running row of the batch it joined). An explicit ``null`` means the
field's default, as in OpenAI's API. A field this server does not honour is refused with a 400
naming it, never silently ignored; the few that cannot change an answer (``store``,
``service_tier`` …) are accepted and listed in :data:`IGNORED`.
"""

from __future__ import annotations

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


class TextPart(BaseModel):
    type: Literal["text"]
    text: Text


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Role
    content: Text | list[TextPart] | None = None
    name: Text | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    include_usage: bool = False


def _drop_nulls(data: Any) -> Any:
    """OpenAI's API reads an explicit null as "the default" for every optional field."""
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if v is not None}
    return data


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: Text = Field("production", description="production, canary, base, or a version (v3)")
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=INT64_MAX)
    max_completion_tokens: int | None = Field(None, ge=1, le=INT64_MAX)
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
    logprobs: bool = False
    top_logprobs: int = Field(0, ge=0, le=20, description="needs logprobs: true")
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
    def _unsupported(self) -> ChatCompletionRequest:
        for name, value in (self.model_extra or {}).items():
            if name in IGNORED:
                continue
            if name in REFUSED:
                raise ValueError(f"{name} is not supported by this server ({REFUSED[name]})")
            if name in ("tools", "tool_choice", "response_format", "parallel_tool_calls"):
                if value in ([], "none", {"type": "text"}, True, False):
                    continue
                raise ValueError(f"{name} is not supported by this server; leave it out")
            raise ValueError(f"unknown field {name!r}; see GET /docs for the fields this takes")
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        if self.messages[-1].role == "assistant" and not self.messages[-1].text():
            raise ValueError("the last message is an empty assistant message; end with the user")
        return self

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def limit(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default

    def bias(self) -> tuple[tuple[int, float], ...]:
        return tuple(sorted((int(k), float(v)) for k, v in (self.logit_bias or {}).items()))


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
