"""The parts of an eval item that are indexed on their own: its prompt and its reference answer.

The most common leak is an eval question pasted alone into a longer message ("pls help with my
homework: ..."), without its answer: a check over the whole item cannot see it, because the
answer's n-grams are missing from the record. Indexing the prompt (the user turns) and the
reference answer (the last assistant turn) as separate units lets the check say which part of
an item a record contains.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneloop.records import Record

FIELDS = ("item", "prompt", "answer")


@dataclass(frozen=True, slots=True)
class ItemFields:
    """The prompt and reference answer of one eval item ("" when the item has none)."""

    prompt: str = ""
    answer: str = ""


def fields_of(record: Record) -> ItemFields:
    """User turns joined as the prompt, the last assistant turn as the answer.

    System turns are left out: they are shared templates, not the item. A ``{"text"}`` item
    has no fields and is checked as a whole.
    """
    return fields_of_obj(record.to_dict())


def user_turns_of_obj(obj: dict[str, object]) -> list[str]:
    """The parts of a record checked on their own as well: a chat's user turns (when it has
    other turns too), a completion's prompt (when it has a completion); a text has none."""
    turns = _turns(obj)
    if turns is not None:
        return _said_by(turns, "user") if len(turns) > 1 else []
    prompt, completion = obj.get("prompt"), obj.get("completion")
    return (
        [prompt] if isinstance(prompt, str) and isinstance(completion, str) and completion else []
    )


def fields_of_obj(obj: dict[str, object]) -> ItemFields:
    """:func:`fields_of` for a raw JSON object, as any file ``tuneloop decontaminate`` reads
    holds them; an object without the chat or completion shape has no fields."""
    turns = _turns(obj)
    if turns is not None:
        last = _said_by(turns, "assistant")[-1:]
        return ItemFields("\n".join(_said_by(turns, "user")), last[0] if last else "")
    prompt, completion = obj.get("prompt"), obj.get("completion")
    if isinstance(prompt, str) or isinstance(completion, str):
        return ItemFields(prompt if isinstance(prompt, str) else "",
                          completion if isinstance(completion, str) else "")  # fmt: skip
    return ItemFields()


def _turns(obj: dict[str, object]) -> list[dict[str, object]] | None:
    """A chat object's turns that have text (None: the object is not a chat)."""
    messages = obj.get("messages")
    if not isinstance(messages, list):
        return None
    return [m for m in messages if isinstance(m, dict) and isinstance(m.get("content"), str)]


def _said_by(turns: list[dict[str, object]], role: str) -> list[str]:
    return [str(m["content"]) for m in turns if m.get("role") == role]
