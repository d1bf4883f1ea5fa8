"""The gateway: every interaction goes to the training intake, the eval bucket, or is dropped.

Routing is by group so that the two sides never share a user or a conversation. A record's
group key is its conversation, else its user, else the record itself; a new group goes to the
eval bucket when a stable hash of (salt, group key) falls below ``eval_fraction``. Once a user
or a conversation has a side, it keeps it: a later record of a known user or conversation
follows it, even in a new conversation of that user. A record whose user and conversation were
already sent to different sides cannot go anywhere without leaking, and is dropped
(``group_conflict``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from tuneloop.config import GatewayConfig
from tuneloop.records import Record, Side

Destination = Literal["train", "eval", "drop"]


@dataclass(frozen=True, slots=True)
class Route:
    destination: Destination
    reason: str | None = None
    window: str | None = None


def hash_fraction(salt: str, key: str) -> float:
    """A uniform number in [0, 1) from (salt, key), stable across runs and machines."""
    digest = hashlib.sha256(f"{salt}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def group_side(cfg: GatewayConfig, group_key: str) -> Side:
    return "eval" if hash_fraction(cfg.salt, group_key) < cfg.eval_fraction else "train"


def time_window(created_at: str | None, size: str) -> str | None:
    """The time window label of a timestamp: 2026-11-21, 2026-W47 or 2026-11."""
    if not created_at:
        return None
    try:
        when = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    if size == "day":
        return when.strftime("%Y-%m-%d")
    if size == "month":
        return when.strftime("%Y-%m")
    year, week, _ = when.isocalendar()
    return f"{year}-W{week:02d}"


def _flagged(record: Record) -> bool:
    meta = record.meta
    return bool(meta.get("flagged")) or meta.get("moderation") == "flagged"


def drop_reason(record: Record, cfg: GatewayConfig) -> str | None:
    """Why a record must not be used at all, or None."""
    text = record.content_text
    if not text.strip():
        return "empty"
    if len(text) > cfg.max_chars:
        return "over_long"
    if _flagged(record):
        return "flagged"
    return None


def identity_keys(record: Record) -> list[str]:
    """The keys that must stay on one side: the user and the conversation."""
    keys = []
    if record.user_id:
        keys.append(f"user:{record.user_id}")
    if record.conversation_id:
        keys.append(f"conversation:{record.conversation_id}")
    return keys or [f"record:{record.id}"]


def route(record: Record, cfg: GatewayConfig, known: Mapping[str, Side]) -> Route:
    """Where ``record`` goes, given the sides already ``known`` for users and conversations.

    The caller records the sides of :func:`identity_keys` for routed records, so that the
    next call sees them.
    """
    reason = drop_reason(record, cfg)
    if reason is not None:
        return Route("drop", reason)
    sides = {known[k] for k in identity_keys(record) if k in known}
    if len(sides) > 1:
        return Route("drop", "group_conflict")
    side = sides.pop() if sides else group_side(cfg, record.group_key)
    window = time_window(record.created_at, cfg.window) if side == "eval" else None
    return Route(side, None, window)
