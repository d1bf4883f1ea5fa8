"""The one normalization, and the kernels' tokenizer agreeing with it on any text."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuneloop.minhash import kernels
from tuneloop.minhash.signatures import encode_for_kernels, word_table
from tuneloop.textnorm import normalize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello,   WORLD!", "hello world"),
        ("don't-stop", "don t stop"),
        ("Straße", "strasse"),
        ("ﬁne ＡＢＣ", "fine abc"),
        ("x² + y₂", "x2 y2"),
        ("tab\tand\nnewline", "tab and newline"),
        ("«quoted» — dash…", "quoted dash"),
        ("", ""),
        ("!!!", ""),
        ("café CAFÉ", "café café"),
    ],
)
def test_normalize_table(text: str, expected: str) -> None:
    assert normalize(text) == expected


@given(st.text())
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


def _kernel_word_hashes(text: str) -> list[int]:
    data = np.frombuffer(encode_for_kernels(text), dtype=np.uint8)
    buf = data if data.size else np.zeros(1, dtype=np.uint8)
    out = np.empty(data.size // 2 + 2, dtype=np.uint64)
    n = kernels.word_hashes(buf, 0, data.size, word_table(), out)
    return [int(h) for h in out[:n]]


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",))))
def test_kernel_words_are_the_normalized_words(text: str) -> None:
    expected = [h for word in normalize(text).split() for h in _kernel_word_hashes(word)]
    assert _kernel_word_hashes(text) == expected


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_fast_path_matches_normalization(text: str) -> None:
    assert _kernel_word_hashes(text) == _kernel_word_hashes(normalize(text))
