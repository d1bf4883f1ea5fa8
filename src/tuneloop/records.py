"""The Record: one interaction or document, whatever JSONL shape it arrived in.

Three shapes are accepted, plus metadata:
- chat: ``{"messages": [{"role": ..., "content": ...}, ...]}`` (OpenAI format),
- completion: ``{"prompt": ..., "completion": ...}``,
- text: ``{"text": ...}`` (a document).

``content_text`` is the text that hashes, signatures and contamination checks compare: the
message contents joined by newlines, prompt + completion, or the text. The record id is the
``id`` field when present, else a stable content hash, so re-ingesting a file gives the same ids.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import orjson

from tuneloop.errors import InputError
from tuneloop.jsonl import DEFAULT_MAX_LINE_BYTES, check_readable, iter_jsonl, skipped

Shape = Literal["chat", "completion", "text"]
# The side of the wall a group of records lives on, for good: the gateway decides it, the
# training store keeps it, the eval bucket holds the other side.
Side = Literal["train", "eval"]
ROLES = ("system", "user", "assistant", "tool", "developer")
META_FIELDS = (
    "user_id",
    "conversation_id",
    "source",
    "created_at",
    "rating",
    "thumbs",
    "correction",
)
_SHAPE_HELP = "give 'messages', 'prompt' and 'completion', or 'text'"


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Record:
    """One training or evaluation example with its provenance and feedback."""

    id: str
    shape: Shape
    messages: tuple[Message, ...] = ()
    prompt: str | None = None
    completion: str | None = None
    text: str | None = None
    user_id: str | None = None
    conversation_id: str | None = None
    source: str | None = None
    created_at: str | None = None
    rating: float | None = None
    thumbs: Literal["up", "down"] | None = None
    correction: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def content_text(self) -> str:
        """The text compared by dedup and contamination checks."""
        if self.shape == "chat":
            return "\n".join(m.content for m in self.messages)
        if self.shape == "completion":
            return f"{self.prompt}\n{self.completion}"
        return self.text or ""

    @property
    def group_key(self) -> str:
        """What the gateway splits on: the conversation, else the user, else the record."""
        if self.conversation_id:
            return f"conversation:{self.conversation_id}"
        if self.user_id:
            return f"user:{self.user_id}"
        return f"record:{self.id}"

    def with_content(self, **changes: Any) -> Record:
        """A copy with some fields replaced (records are immutable)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The JSONL form: the original shape plus the metadata that is set."""
        out: dict[str, Any] = {"id": self.id}
        if self.shape == "chat":
            out["messages"] = [asdict(m) for m in self.messages]
        elif self.shape == "completion":
            out["prompt"], out["completion"] = self.prompt, self.completion
        else:
            out["text"] = self.text
        for name in META_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.meta:
            out["meta"] = self.meta
        return out


def content_id(obj: dict[str, Any]) -> str:
    """A stable id from the record's content, for records that arrive without one."""
    body = {k: obj[k] for k in ("messages", "prompt", "completion", "text") if k in obj}
    digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"r-{digest[:16]}"


def _messages(path: Path, line: int, raw: Any) -> tuple[Message, ...]:
    if not isinstance(raw, list) or not raw:
        raise InputError(path, line, "'messages' must be a non-empty list", _SHAPE_HELP)
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise InputError(
                path, line, f"message {i} has no string 'content'", "give role and content"
            )
        role = m.get("role")
        if role not in ROLES:
            raise InputError(
                path, line, f"message {i} has role {role!r}", f"use one of {', '.join(ROLES)}"
            )
        out.append(Message(role=role, content=m["content"]))
    return tuple(out)


# ShareGPT's speaker names (FastChat, LLaMA-Factory, Axolotl) -> OpenAI roles.
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bard": "assistant", "bing": "assistant",
                  "system": "system", "function_call": "assistant", "observation": "tool",
                  "tool": "tool"}  # fmt: skip


def _sharegpt(path: Path, line: int, obj: dict[str, Any]) -> list[dict[str, Any]]:
    """A ShareGPT record's ``conversations`` (``from``/``value`` turns, an optional ``system``
    field) as OpenAI messages; an unknown speaker is one line naming the known ones."""
    turns = obj["conversations"]
    if not isinstance(turns, list) or not turns:
        raise InputError(path, line, "'conversations' must be a non-empty list", _SHAPE_HELP)
    out = (
        [{"role": "system", "content": obj["system"]}] if isinstance(obj.get("system"), str) else []
    )
    for i, turn in enumerate(turns):
        speaker = turn.get("from") if isinstance(turn, dict) else None
        if speaker not in SHAREGPT_ROLES:
            raise InputError(path, line, f"conversations turn {i} is from {speaker!r}",
                             f"use one of {', '.join(SHAREGPT_ROLES)}")  # fmt: skip
        out.append({"role": SHAREGPT_ROLES[speaker], "content": turn.get("value")})
    return out


def _thumbs(path: Path, line: int, raw: Any) -> Literal["up", "down"] | None:
    if raw is None:
        return None
    if raw in ("up", True, 1, "+1", "thumbs_up"):
        return "up"
    if raw in ("down", False, -1, 0, "-1", "thumbs_down"):
        return "down"
    raise InputError(path, line, f"'thumbs' is {raw!r}", 'use "up" or "down"')


def _opt_str(path: Path, line: int, obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and key != "correction":
        return str(value)
    raise InputError(path, line, f"'{key}' must be a string", f"write {key} as a JSON string")


def record_from_obj(
    obj: dict[str, Any], path: Path | str = "<input>", line: int = 0, text_field: str | None = None
) -> Record:
    """Build a Record from one decoded JSONL object; raise InputError naming the fix."""
    p = Path(path)
    rid = obj.get("id")
    rec_id = str(rid) if rid is not None else content_id(obj)
    fields: dict[str, Any] = {}
    if text_field is not None:
        if not isinstance(obj.get(text_field), str):
            raise InputError(p, line, f"no string field '{text_field}'", "check --text-field")
        fields = {"shape": "text", "text": obj[text_field]}
    elif "messages" in obj:
        fields = {"shape": "chat", "messages": _messages(p, line, obj["messages"])}
    elif "conversations" in obj:
        fields = {"shape": "chat", "messages": _messages(p, line, _sharegpt(p, line, obj))}
    elif "prompt" in obj or "completion" in obj:
        prompt, completion = obj.get("prompt"), obj.get("completion")
        if not isinstance(prompt, str) or not isinstance(completion, str):
            raise InputError(p, line, "'prompt' and 'completion' must both be strings", _SHAPE_HELP)
        fields = {"shape": "completion", "prompt": prompt, "completion": completion}
    elif isinstance(obj.get("text"), str):
        fields = {"shape": "text", "text": obj["text"]}
    else:
        raise InputError(p, line, "no text found", _SHAPE_HELP + " (or pass --text-field)")
    rating = obj.get("rating")
    if rating is not None and (isinstance(rating, bool) or not isinstance(rating, int | float)):
        raise InputError(p, line, f"'rating' is {rating!r}", "use a number")
    known = {"id", "messages", "conversations", "prompt", "completion", "text", "meta",
             *META_FIELDS}  # fmt: skip
    meta = dict(obj.get("meta") or {})
    meta.update({k: v for k, v in obj.items() if k not in known})
    return Record(
        id=rec_id,
        **fields,
        user_id=_opt_str(p, line, obj, "user_id"),
        conversation_id=_opt_str(p, line, obj, "conversation_id"),
        source=_opt_str(p, line, obj, "source"),
        created_at=_opt_str(p, line, obj, "created_at"),
        rating=float(rating) if rating is not None else None,
        thumbs=_thumbs(p, line, obj.get("thumbs")),
        correction=_opt_str(p, line, obj, "correction"),
        meta=meta,
    )


TABLES = {".csv": ",", ".tsv": "\t"}  # read as tables, one record per row, by their suffix


def read_records(
    path: Path,
    text_field: str | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    columns: Mapping[str, str] | None = None,
    bad: list[dict[str, Any]] | None = None,
) -> Iterator[tuple[int, Record]]:
    """Stream (line number, Record) from a JSONL file, or from a CSV or TSV file (by suffix):
    one record per row, the header naming the fields (``columns`` maps a field to the column
    that holds it, e.g. ``{"prompt": "question"}``; its line number is the row's).

    With ``bad`` (a list), a line that cannot be read is appended to it (line number, problem)
    and skipped instead of ending the read.
    """
    tabled = path.suffix.lower() in TABLES
    rows = _table(path, columns) if tabled else iter_jsonl(path, max_line_bytes, bad)
    for line_no, obj in rows:
        try:
            yield line_no, record_from_obj(obj, path, line_no, text_field)
        except InputError as exc:
            if bad is None:
                raise
            bad.append(skipped(exc))


def _table(path: Path, columns: Mapping[str, str] | None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a CSV/TSV file as objects keyed by field (renamed through ``columns``); empty
    cells are left out, so an optional field may be blank."""
    check_readable(path)
    wanted = dict(columns or {})
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh, delimiter=TABLES[path.suffix.lower()])
        header = reader.fieldnames or []
        missing = sorted(col for col in wanted.values() if col not in header)
        if missing:
            raise InputError(path, 1, f"no column {', '.join(map(repr, missing))} in the header "
                             f"({', '.join(header)})", "check --columns")  # fmt: skip
        rename = {col: field for field, col in wanted.items()}
        for row in reader:
            obj = {rename.get(k, k): v for k, v in row.items() if k is not None and v}
            if isinstance(obj.get("rating"), str):  # a number in a text cell
                obj["rating"] = _number(obj["rating"])
            yield reader.line_num, obj


def _number(cell: str) -> float | str:
    try:
        return float(cell)
    except ValueError:
        return cell  # record_from_obj says what is wrong with it


def text_of(obj: dict[str, Any], text_field: str | None = None) -> str | None:
    """The compared text of a raw JSONL object, without building a Record (the fast path)."""
    if text_field is not None:
        value = obj.get(text_field)
        return value if isinstance(value, str) else None
    messages = obj.get("messages")
    if messages is None and isinstance(obj.get("conversations"), list):
        system = [{"content": obj["system"]}] if isinstance(obj.get("system"), str) else []
        messages = system + [{"content": t.get("value")} if isinstance(t, dict) else t
                             for t in obj["conversations"]]  # fmt: skip
    if isinstance(messages, list):
        parts = [m.get("content") for m in messages if isinstance(m, dict)]
        if parts and all(isinstance(c, str) for c in parts):
            return "\n".join(parts)  # type: ignore[arg-type]
        return None
    prompt, completion = obj.get("prompt"), obj.get("completion")
    if isinstance(prompt, str) and isinstance(completion, str):
        return f"{prompt}\n{completion}"
    text = obj.get("text")
    return text if isinstance(text, str) else None
