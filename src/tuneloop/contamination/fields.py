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


def fields_of_obj(obj: dict[str, object]) -> ItemFields:
    """:func:`fields_of` for a raw JSON object, as any file ``tuneloop decontaminate`` reads
    holds them; an object without the chat or completion shape has no fields."""
    messages = obj.get("messages")
    if isinstance(messages, list):
        turns = [m for m in messages if isinstance(m, dict) and isinstance(m.get("content"), str)]
        users = [str(m["content"]) for m in turns if m.get("role") == "user"]
        last = [str(m["content"]) for m in turns if m.get("role") == "assistant"][-1:]
        return ItemFields("\n".join(users), last[0] if last else "")
    prompt, completion = obj.get("prompt"), obj.get("completion")
    if isinstance(prompt, str) or isinstance(completion, str):
        return ItemFields(prompt if isinstance(prompt, str) else "",
                          completion if isinstance(completion, str) else "")  # fmt: skip
    return ItemFields()
