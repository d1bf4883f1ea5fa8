"""CleanBlock: make text fields byte-clean without changing what the user wrote.

Invisible junk (control characters, zero-width spaces, BOMs, CR line endings, trailing spaces)
makes otherwise equal records hash differently and teaches the model to emit garbage. The fix
must not rewrite content, so it uses NFC (canonical composition: "e" + combining acute → "é"),
not NFKC, which would fold full-width letters, ligatures and superscripts the user chose.

ZWJ (U+200D) and ZWNJ (U+200C) are kept on purpose: they are zero-width but meaningful (emoji
sequences such as 👨‍👩‍👧, word shapes in Persian and Indic scripts). Only characters that never
carry meaning in a training example are removed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, ClassVar

from tuneloop.curate.base import Drop, MapBlock
from tuneloop.records import Message, Record

# ZWSP, word joiner, BOM / zero-width no-break space, Mongolian vowel separator.
_ZERO_WIDTH = "\u200b\u2060\ufeff\u180e"
_KEEP_CONTROLS = "\n\t"
_DELETE_TABLE: dict[int, None] = {
    cp: None for cp in [*range(0x20), *range(0x7F, 0xA0)] if chr(cp) not in _KEEP_CONTROLS
} | {ord(c): None for c in _ZERO_WIDTH}
# CRLF, lone CR, vertical tab, form feed, NEL, line and paragraph separators all end a line.
_LINE_BREAKS = re.compile("\r\n?|[\x0b\x0c\x85\u2028\u2029]")
# Lone surrogates cannot be written as UTF-8, so they would break the JSONL/Parquet writers.
_SURROGATES = re.compile("[\ud800-\udfff]")
_BLANK_RUNS = re.compile("\n{4,}")  # more than two blank lines in a row


def clean_text(text: str) -> str:
    """Return ``text`` cleaned; idempotent: ``clean_text(clean_text(t)) == clean_text(t)``.

    Deletions happen before NFC, so characters that a removed zero-width space separated
    compose on the first pass instead of the second.
    """
    text = _LINE_BREAKS.sub("\n", text)
    text = _SURROGATES.sub("", text.translate(_DELETE_TABLE))
    text = unicodedata.normalize("NFC", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n\n", text).strip()


def _clean_record(record: Record) -> Record:
    """Clean every text field; an all-blank correction is no correction."""
    correction = clean_text(record.correction) if record.correction is not None else None
    changes: dict[str, Any] = {"correction": correction or None}
    if record.shape == "chat":
        changes["messages"] = tuple(Message(m.role, clean_text(m.content)) for m in record.messages)
    elif record.shape == "completion":
        changes["prompt"] = clean_text(record.prompt or "")
        changes["completion"] = clean_text(record.completion or "")
    else:
        changes["text"] = clean_text(record.text or "")
    return record.with_content(**changes)


def _chat_verdict(messages: tuple[Message, ...]) -> Drop | None:
    """A chat is usable with one user and one assistant turn that still have content."""
    roles = {m.role for m in messages}
    if "assistant" not in roles:
        return Drop("no_assistant_turn")
    if "user" not in roles:
        return Drop("no_user_turn")
    with_content = {m.role for m in messages if m.content}
    missing = [role for role in ("user", "assistant") if role not in with_content]
    return Drop("empty_after_clean", {"empty": missing}) if missing else None


def _verdict(record: Record) -> Drop | None:
    """Why a cleaned record is unusable, or None when it is fine."""
    if record.shape == "chat":
        return _chat_verdict(record.messages)
    if record.shape == "completion":
        empty = [name for name in ("prompt", "completion") if not getattr(record, name)]
        return Drop("empty_after_clean", {"empty": empty}) if empty else None
    return None if record.text else Drop("empty_after_clean", {"empty": ["text"]})


@dataclass(frozen=True)
class CleanBlock(MapBlock):
    """Normalize text fields (NFC, controls, zero-width, line endings, whitespace)."""

    name: ClassVar[str] = "clean"

    def params(self) -> dict[str, Any]:
        removed = [f"U+{ord(c):04X}" for c in _ZERO_WIDTH]
        return {"unicode": "NFC", "max_blank_lines": 2, "zero_width_removed": removed}

    def process(self, record: Record) -> Record | Drop:
        cleaned = _clean_record(record)
        verdict = _verdict(cleaned)
        if verdict is not None:
            return verdict
        return record if cleaned == record else cleaned
