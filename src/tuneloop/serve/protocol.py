"""The request and response bodies of the API, as pydantic models (they make the OpenAPI schema).

Fields follow OpenAI's chat completions API. Parameters tuneloop cannot honour (``n`` > 1,
tools) are refused with a message, not ignored; parameters that do not change the answer's
meaning (``presence_penalty``, ``logit_bias`` …) are accepted and ignored, as vLLM does.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

Role = Literal["system", "user", "assistant", "tool", "developer"]


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


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: Text = Field("production", description="production, canary, base, or a version (v3)")
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=1, description="one choice per request")
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: Text | list[Text] | None = None
    seed: int | None = None
    user: Text | None = Field(None, max_length=256, description="end-user id (sticky canary arm)")
    metadata: dict[Text, Text] | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @model_validator(mode="after")
    def _unsupported(self) -> ChatCompletionRequest:
        extra = self.model_extra or {}
        for name in ("tools", "functions", "tool_choice", "response_format"):
            if extra.get(name) not in (None, [], "none", {"type": "text"}):
                raise ValueError(f"{name} is not supported by this server; leave it out")
        if self.messages[-1].role == "assistant" and not self.messages[-1].text():
            raise ValueError("the last message is an empty assistant message; end with the user")
        return self

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def limit(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default


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


class CanaryStartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Text = Field(min_length=1)
    weight: float = Field(10.0, gt=0.0, le=100.0)
    step: float = Field(10.0, gt=0.0, le=100.0)
    max_weight: float = Field(50.0, gt=0.0, le=100.0)


class VersionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Text = Field(min_length=1)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def completion_body(
    rid: str, model: str, text: str, finish: str, usage: dict[str, int], fingerprint: str
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": fingerprint,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": usage,
    }


def chunk_body(
    rid: str,
    model: str,
    fingerprint: str,
    delta: dict[str, str] | None = None,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
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
