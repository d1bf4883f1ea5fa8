"""Field accuracy: for a task whose answers are JSON objects, were the named fields right?

A support ticket, an extraction, a routing decision: what the application reads is a few
fields (the intent, the priority), and word-overlap metrics mostly measure the free text beside
them. ``field_acc`` is the share of the configured fields whose value in the answer equals the
reference's, after the usual normalization (case, punctuation, articles).

Answers are read leniently, because a generation cut at ``max_new_tokens`` is still a ticket a
reader would understand: a complete JSON object is parsed; otherwise each field's first
``"name": value`` pair is read off the text. Items whose reference is not a JSON object holding
any of the fields get no ``field_acc`` (the gate pairs the items that have one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from tuneloop.textnorm import normalize

_SCALAR = r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null'


@lru_cache(maxsize=64)
def _pair(name: str) -> re.Pattern[str]:
    return re.compile(rf'"{re.escape(name)}"\s*:\s*({_SCALAR})')


def _scalar_text(value: Any) -> str | None:
    """A field's value as text; objects and lists are not fields a reader compares by value."""
    if isinstance(value, dict | list):
        return None
    if value is None or isinstance(value, bool):
        return json.dumps(value)  # null, true, false: as JSON writes them
    return str(value)


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def reference_fields(reference: str, names: Sequence[str]) -> dict[str, str]:
    """The named fields of a JSON-object reference with a scalar value ({} otherwise)."""
    obj = _json_object(reference.strip())
    if obj is None:
        return {}
    found = {name: _scalar_text(obj[name]) for name in names if name in obj}
    return {name: value for name, value in found.items() if value is not None}


def answer_fields(answer: str, names: Sequence[str]) -> dict[str, str]:
    """The named fields of an answer: parsed when it is a whole JSON object, else read off."""
    obj = _json_object(answer.strip())
    if obj is not None:
        found = {name: _scalar_text(obj[name]) for name in names if name in obj}
        return {name: value for name, value in found.items() if value is not None}
    out = {}
    for name in names:
        match = _pair(name).search(answer)
        if match is None:
            continue
        raw = match.group(1)
        out[name] = json.loads(raw) if raw.startswith('"') else raw
    return out


def field_accuracy(answer: str, reference: str, names: Sequence[str]) -> float | None:
    """Share of the reference's named fields that the answer got right; None without any."""
    want = reference_fields(reference, names)
    if not want:
        return None
    got = answer_fields(answer, list(want))
    right = [name in got and normalize(got[name]) == normalize(want[name]) for name in want]
    return sum(right) / len(want)
