"""Constrained decoding: answers that follow a JSON schema, and tool calls that must happen.

llguidance (the engine behind vLLM's ``guidance`` backend) turns a JSON schema or a grammar
into a per-step mask of the tokens that keep the output valid. We chose it over xgrammar and
outlines-core, measured on this CPU with a 49k vocabulary: a moderate schema is ready in 2–5 ms
and masks in ~0.02 ms per row per step (xgrammar needed 0.8 s to compile the same schema and
pulls torch and triton; outlines-core 126 s, and its regexes cannot express free text followed
by a tool call). It is a 7.6 MB wheel with no dependencies that builds its view of the
tokenizer from the fast tokenizer already loaded, offline.

Per row and step: the matcher fills the allowed tokens, the sampler picks among them, the
matcher consumes the choice; once the grammar is complete and nothing may follow, the row ends
(``stop``). ``max_tokens`` may still cut an answer short (``length``), as in OpenAI's API.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import llguidance
import llguidance.hf
import numpy as np
import torch
from llguidance import LLMatcher, StructTag
from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

from tuneloop.serve.generation import GenerationRequest, InvalidRequestError
from tuneloop.serve.tools import CLOSE, JSON_STYLE, OPEN, call_schema


def _compact(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema whose JSON is written with json.dumps' separators (inside Lark's %json too)."""
    return {**schema, "x-guidance": {**JSON_STYLE, **schema.get("x-guidance", {})}}


def _tools_of(request: GenerationRequest) -> list[dict[str, Any]]:
    mode = request.tool_mode or ""
    if mode.startswith("function:"):
        name = mode.split(":", 1)[1]
        return [t for t in request.tools if t["function"]["name"] == name]
    return list(request.tools)


def _call_grammar(request: GenerationRequest) -> str:
    """A Lark grammar: one required call, or one or more when parallel calls are allowed."""
    body = json.dumps(_compact(call_schema(_tools_of(request))))
    several = request.tool_mode == "required" and request.parallel_tool_calls
    start = 'start: call ("\\n" call)*' if several else "start: call"
    call = f'call: "{OPEN}\\n" %json {body} "\\n{CLOSE}"'
    return str(llguidance.grammar_from("lark", f"{start}\n{call}\n"))


def _auto_grammar(request: GenerationRequest) -> str:
    """Free text; once ``<tool_call>`` is written, a valid call must follow."""
    schema = _compact(call_schema(list(request.tools)))
    tag = StructTag(trigger=OPEN, begin=f"{OPEN}\n", grammar=schema, end=f"\n{CLOSE}")
    return str(StructTag.to_grammar([tag], assume_special=False))


class Grammars:
    """llguidance's view of one model's tokenizer, and the grammar each request compiles to."""

    def __init__(self, tokenizer: Any, vocab: int) -> None:
        self._hf, self.vocab = tokenizer, vocab
        self._tok: Any = None
        self._lock = threading.Lock()

    @property
    def tokenizer(self) -> Any:
        """Built on first use (~0.4 s): servers that never constrain an answer never pay it."""
        with self._lock:
            if self._tok is None:
                size = max(self.vocab, len(self._hf))  # llguidance refuses fewer rows than ids
                self._tok = llguidance.hf.from_tokenizer(self._hf, n_vocab=size)
            return self._tok

    def compile(self, request: GenerationRequest) -> str | None:
        """The grammar a request's answer must follow, or None; a bad schema is a 400."""
        param = "tools" if request.tool_mode else "response_format"
        try:
            if request.json_schema is not None:
                grammar = LLMatcher.grammar_from_json_schema(
                    json.dumps(request.json_schema),
                    defaults={"whitespace_flexible": False, "item_separator": ", ",
                              "key_separator": ": "},
                )  # fmt: skip
            elif request.tool_mode == "auto":
                grammar = _auto_grammar(request)
            elif request.tool_mode:
                grammar = _call_grammar(request)
            else:
                return None
        except (ValueError, TypeError) as exc:
            raise InvalidRequestError(f"{param}: {exc}", param) from None
        error = LLMatcher.validate_grammar(grammar, self.tokenizer)
        if error:
            raise InvalidRequestError(f"{param}: {error.splitlines()[0]}", param)
        return str(grammar)

    def matcher(self, grammar: str) -> Matcher:
        return Matcher(self.tokenizer, grammar, self.vocab)


class Matcher:
    """One row's place in its grammar."""

    def __init__(self, tokenizer: Any, grammar: str, vocab: int) -> None:
        self._m = LLMatcher(tokenizer, grammar, log_level=0)
        self._bits = allocate_token_bitmask(1, tokenizer.vocab_size)
        self._vocab = vocab
        self._check()

    def _check(self) -> None:
        if self._m.is_error():
            raise RuntimeError(f"constrained decoding: {self._m.get_error()}")

    def allowed(self) -> torch.Tensor:
        """The tokens that keep the answer valid, as a bool mask over the model's vocabulary."""
        fill_next_token_bitmask(self._m, self._bits, 0)
        bits = np.unpackbits(self._bits.view(np.uint8), axis=-1, bitorder="little")
        return torch.from_numpy(bits[0, : self._vocab].astype(bool))

    def consume(self, token: int) -> None:
        self._m.consume_token(token)
        self._check()

    @property
    def complete(self) -> bool:
        """Nothing more may follow: the row ends here."""
        return bool(self._m.is_stopped())
