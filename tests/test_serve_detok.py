"""Streaming text: the deltas add up to the whole decode, and stop strings never leak."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuneloop.serve.embedded.detok import IncrementalText


@pytest.fixture(scope="module")
def tok(tiny_base: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base)


def stream(tok: Any, ids: list[int], stop: tuple[str, ...] = ()) -> tuple[str, bool]:
    text = IncrementalText(tok, stop)
    out = []
    for i in ids:
        out.append(text.push(i))
        if text.stopped:
            break
    out.append(text.flush())
    assert "".join(out) == text.text
    return text.text, text.stopped


TOKENS = st.lists(st.integers(min_value=3, max_value=399), max_size=40)


@given(ids=TOKENS)
def test_deltas_add_up_to_the_whole_decode(tok: Any, ids: list[int]) -> None:
    text, stopped = stream(tok, ids)
    assert text == tok.decode(ids, skip_special_tokens=True)
    assert not stopped


@given(ids=TOKENS, stop=st.sampled_from(["e", "the", "ne ", "\n", "zzz"]))
def test_text_ends_right_before_the_first_stop_string(tok: Any, ids: list[int], stop: str) -> None:
    full = tok.decode(ids, skip_special_tokens=True)
    text, stopped = stream(tok, ids, (stop,))
    at = full.find(stop)
    assert stopped == (at >= 0)
    assert text == (full[:at] if at >= 0 else full)


def test_a_multi_byte_character_is_sent_whole(tok: Any) -> None:
    ids = tok.encode("café ☕ done", add_special_tokens=False)
    text = IncrementalText(tok)
    deltas = [text.push(i) for i in ids] + [text.flush()]
    assert "".join(deltas) == "café ☕ done"
    assert all("\ufffd" not in d for d in deltas)
