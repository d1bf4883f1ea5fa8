"""The gateway: stable group routing, sticky sides, drop reasons, time windows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuneloop.config import GatewayConfig
from tuneloop.gateway import group_side, identity_keys, route, time_window
from tuneloop.records import Record, Side

CFG = GatewayConfig()


def rec(
    rid: str, user: str | None = None, conv: str | None = None, text: str = "hello there"
) -> Record:
    return Record(id=rid, shape="text", text=text, user_id=user, conversation_id=conv)


def route_all(records: list[Record], cfg: GatewayConfig = CFG) -> list[str]:
    known: dict[str, Side] = {}
    out = []
    for r in records:
        decision = route(r, cfg, known)
        if decision.destination != "drop":
            for key in identity_keys(r):
                known.setdefault(key, decision.destination)
        out.append(decision.destination)
    return out


def test_fraction_of_groups_held_out() -> None:
    sides = [group_side(CFG, f"user:{i}") for i in range(20_000)]
    assert sides.count("eval") / len(sides) == pytest.approx(0.1, abs=0.01)


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 60)), min_size=1, max_size=200))
def test_no_user_or_conversation_on_both_sides(pairs: list[tuple[int, int]]) -> None:
    cfg = GatewayConfig(eval_fraction=0.4)
    records = [rec(f"r{k}", f"u{u}", f"c{c}") for k, (u, c) in enumerate(pairs)]
    sides: dict[str, set[str]] = {}
    for r, dest in zip(records, route_all(records, cfg), strict=True):
        if dest == "drop":
            continue
        for key in identity_keys(r):
            sides.setdefault(key, set()).add(dest)
    assert all(len(s) == 1 for s in sides.values())


def test_routing_is_stable_across_runs() -> None:
    records = [rec(f"r{i}", f"u{i % 50}") for i in range(500)]
    assert route_all(records) == route_all(records)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (rec("a", text="   "), "empty"),
        (rec("b", text="x" * 40_000), "over_long"),
        (Record(id="c", shape="text", text="ok", meta={"flagged": True}), "flagged"),
        (Record(id="d", shape="text", text="ok", meta={"moderation": "flagged"}), "flagged"),
    ],
)
def test_drop_reasons(record: Record, reason: str) -> None:
    assert route(record, CFG, {}).reason == reason


def test_conflicting_sides_are_dropped_not_leaked() -> None:
    known: dict[str, Side] = {"user:u1": "train", "conversation:c9": "eval"}
    assert route(rec("x", "u1", "c9"), CFG, known).reason == "group_conflict"


@pytest.mark.parametrize(
    ("created", "size", "window"),
    [
        ("2026-11-21T10:00:00Z", "week", "2026-W47"),
        ("2026-11-21T10:00:00+00:00", "day", "2026-11-21"),
        ("2026-11-21", "month", "2026-11"),
        ("2026-01-01T00:30:00+02:00", "day", "2025-12-31"),
        ("not a date", "week", None),
        (None, "week", None),
    ],
)
def test_time_windows(created: str | None, size: str, window: str | None) -> None:
    assert time_window(created, size) == window
