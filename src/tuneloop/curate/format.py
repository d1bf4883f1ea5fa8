"""FormatBlock: turn every record into the one shape the trainer consumes.

The trainer learns from chats whose last turn is the assistant's (the tokens it is trained to
produce), so completions become a two-turn chat, chats that do not end with an assistant turn
are dropped, and consecutive turns of the same role are merged, as chat templates expect
alternating roles. Empty turns are removed first: they carry nothing to learn. Text documents
stay "text" records (trained on as plain language modelling) unless ``text_as="drop"``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

from tuneloop.curate.base import Drop, MapBlock
from tuneloop.errors import ConfigError
from tuneloop.records import Message, Record

_SYSTEM_ROLES = ("system", "developer")
_TEXT_AS = ("text", "drop")


def merge_turns(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    """Drop empty turns and join consecutive turns of the same role with a blank line."""
    out: list[Message] = []
    for m in messages:
        if not m.content.strip():
            continue
        if out and out[-1].role == m.role:
            out[-1] = Message(m.role, f"{out[-1].content}\n\n{m.content}")
        else:
            out.append(m)
    return tuple(out)


def as_chat(record: Record) -> tuple[Message, ...]:
    """The record's turns: its messages, or a user prompt and an assistant completion."""
    if record.shape == "completion":
        return (Message("user", record.prompt or ""), Message("assistant", record.completion or ""))
    return record.messages


@dataclass(frozen=True)
class FormatBlock(MapBlock):
    """Convert records to trainer-ready chats (or text documents) and validate role order."""

    name: ClassVar[str] = "format"
    system_prompt: str | None = None
    text_as: Literal["text", "drop"] = "text"

    def __post_init__(self) -> None:
        if self.text_as not in _TEXT_AS:
            raise ConfigError(f"format: text_as={self.text_as!r}; use one of {', '.join(_TEXT_AS)}")

    def params(self) -> dict[str, Any]:
        return asdict(self)

    def process(self, record: Record) -> Record | Drop:
        if record.shape == "text":
            keep = self.text_as == "text"
            return record if keep else Drop("unsupported_shape", {"shape": "text"})
        messages = merge_turns(as_chat(record))
        if not messages or messages[-1].role != "assistant":
            last = messages[-1].role if messages else None
            return Drop("ends_without_assistant", {"last_role": last})
        if self.system_prompt and not any(m.role in _SYSTEM_ROLES for m in messages):
            messages = (Message("system", self.system_prompt), *messages)
        return record.with_content(shape="chat", messages=messages, prompt=None, completion=None)
