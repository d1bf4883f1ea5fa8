"""Tool calls in the Hermes format: how a model is told of its tools, and how its calls are read.

A model calls a tool by writing ``<tool_call>\\n{"name": …, "arguments": {…}}\\n</tool_call>``
(the format of Hermes, Qwen 2.5 and most open function-calling fine-tunes). A chat template that
knows tools renders them itself (``apply_chat_template(tools=…)``); one that does not (the
default model's template is plain ChatML) gets the Hermes system prompt written here, with the
tools' JSON signatures in ``<tools></tools>``, and earlier calls and results written back as text.
What the model writes is read back here: the calls come out of the text, the rest is the content.
When a call is required (``tool_choice`` ``required`` or a named function) the output is
constrained to this format; under ``auto`` only the arguments are, once a call begins.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OPEN, CLOSE = "<tool_call>", "</tool_call>"
HERMES_SYSTEM = (
    "You are a function calling AI model. You are provided with function signatures within "
    "<tools></tools> XML tags. You may call one or more functions to assist with the user "
    "query. Don't make assumptions about what values to plug into functions. Here are the "
    "available tools: <tools>\n{tools}\n</tools>\nFor each function call return a json object "
    "with function name and arguments within <tool_call></tool_call> XML tags as follows:\n"
    '<tool_call>\n{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>'
)
# The same conversation as hermes_messages() in a ChatML template, for vLLM (whose tool parser
# reads the calls back): messages, earlier calls and results, and the tools' system prompt.
HERMES_CHATML_PATH = Path(__file__).with_name("hermes_chatml.jinja")


def vllm_template(original: str) -> str:
    """A chat template for vLLM: the Hermes ChatML one when a request has tools, the model's
    own otherwise (so answers without tools are those of the embedded backend)."""
    hermes = HERMES_CHATML_PATH.read_text(encoding="utf-8")
    return "{%- if tools %}" + hermes + "{%- else %}" + original + "{%- endif %}"


# Compact separators, as json.dumps writes them: small models loop on free whitespace.
JSON_STYLE = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI's API carries it

    def to_dict(self, index: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }
        return out if index is None else {"index": index, **out}


def call_text(name: str, arguments: Any) -> str:
    """One call as the model writes it."""
    args = json.loads(arguments) if isinstance(arguments, str) else arguments
    body = json.dumps({"name": name, "arguments": args}, ensure_ascii=False)
    return f"{OPEN}\n{body}\n{CLOSE}"


def _arguments(raw: Any) -> Any:
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return raw


def hermes_messages(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> list[dict[str, str]]:
    """Messages for a template that knows no tools: the tools in a system prompt, earlier
    calls as assistant text, results as ``<tool_response>`` text."""
    out: list[dict[str, str]] = []
    if tools:
        signatures = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
        out.append({"role": "system", "content": HERMES_SYSTEM.format(tools=signatures)})
        if messages and messages[0]["role"] in ("system", "developer"):
            out[0]["content"] = f"{messages[0]['content'] or ''}\n\n{out[0]['content']}"
            messages = messages[1:]
    for m in messages:
        if m.get("tool_calls"):
            calls = [call_text(c["function"]["name"], c["function"]["arguments"])
                     for c in m["tool_calls"]]  # fmt: skip
            parts = ([m["content"]] if m.get("content") else []) + calls
            out.append({"role": "assistant", "content": "\n".join(parts)})
        elif m["role"] == "tool":
            out.append({"role": "tool", "content": f"<tool_response>\n{m['content'] or ''}\n"
                        "</tool_response>"})  # fmt: skip
        else:
            out.append({"role": m["role"], "content": m.get("content") or ""})
    return out


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages for a template that knows tools: arguments as objects, as HF templates want."""
    out = []
    for m in messages:
        m = dict(m)
        if m.get("tool_calls"):
            m["tool_calls"] = [_template_call(c["function"]) for c in m["tool_calls"]]
        m["content"] = m.get("content") or ""
        out.append(m)
    return out


def _template_call(function: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": function["name"], "arguments": _arguments(function["arguments"])},
    }


def parse(text: str) -> tuple[str | None, list[ToolCall]]:
    """The content and the calls in what the model wrote. A block that is not a JSON call with
    a name (cut by max_tokens, say) stays in the content, as written."""
    calls: list[ToolCall] = []
    kept: list[str] = []
    rest = text
    while (start := rest.find(OPEN)) >= 0:
        end = rest.find(CLOSE, start)
        if end < 0:
            break
        call = _call(rest[start + len(OPEN) : end])
        if call is None:
            kept.append(rest[: end + len(CLOSE)])
        else:
            kept.append(rest[:start])
            calls.append(call)
        rest = rest[end + len(CLOSE) :]
    kept.append(rest)
    content = "".join(kept).strip() if calls else "".join(kept)
    return (content or None) if calls else content, calls


def _call(body: str) -> ToolCall | None:
    try:
        found = json.loads(body)
    except ValueError:
        return None
    if not isinstance(found, dict) or not isinstance(found.get("name"), str):
        return None
    args = json.dumps(found.get("arguments", found.get("parameters", {})), ensure_ascii=False)
    return ToolCall(f"call_{uuid.uuid4().hex[:24]}", found["name"], args)


class HeldText:
    """Streaming text with the tool calls held back: once ``<tool_call>`` may have begun, the
    rest waits for the end, where :func:`parse` reads it (a partial tag is held, not sent)."""

    def __init__(self) -> None:
        self._pending = ""
        self._inside = False

    def push(self, text: str) -> str:
        if self._inside:
            self._pending += text
            return ""
        pending = self._pending + text
        at = pending.find(OPEN)
        if at >= 0:
            self._inside, self._pending = True, pending[at:]
            return pending[:at]
        keep = next((n for n in range(min(len(pending), len(OPEN) - 1), 0, -1)
                     if pending.endswith(OPEN[:n])), 0)  # fmt: skip
        self._pending = pending[len(pending) - keep :] if keep else ""
        return pending[: len(pending) - keep]

    def rest(self) -> str:
        """What was held back, for :func:`parse` at the end."""
        return self._pending


def call_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON schema of one call to any of ``tools``: its name, and its arguments' schema."""
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": t["function"]["name"]},
                "arguments": t["function"].get("parameters") or {"type": "object"},
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for t in tools
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}
