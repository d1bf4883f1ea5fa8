"""From dataset records to token rows: chat template, completion-only labels, packing.

Only the assistant's tokens carry a loss (labels elsewhere are -100): the model should learn to
answer, not to predict the user's question. Assistant spans are found by rendering the chat
template on growing prefixes of the conversation, which works for any template that renders a
conversation as the concatenation of its turns (ChatML, Llama, Mistral…); a template that does
not is reported instead of silently mislabelled.

Packing concatenates examples into rows of ``block_size`` tokens with position ids restarting at
each example; with no attention mask and no KV cache, transformers then keeps every example's
attention inside itself, so no compute is wasted on padding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tuneloop.errors import TuneloopError
from tuneloop.records import Record

IGNORE = -100


@dataclass(frozen=True)
class Example:
    """One tokenized record: ids, labels (-100 where no loss), and where it came from."""

    record_id: str
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def trained_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


@dataclass(frozen=True)
class Row:
    """One training row: a single example, or several packed with restarting positions."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    position_ids: tuple[int, ...]
    record_ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.input_ids)


def _render(
    tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool
) -> list[int]:
    ids = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=add_generation_prompt, return_dict=False
    )
    return list(ids)


def chat_example(record_id: str, messages: list[dict[str, str]], tokenizer: Any) -> Example:
    """Tokens of a whole conversation, with labels on the assistant turns only."""
    full = _render(tokenizer, messages, False)
    labels = [IGNORE] * len(full)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(_render(tokenizer, messages[:i], True)) if i else 0
        upto = _render(tokenizer, messages[: i + 1], False)
        if full[: len(upto)] != upto:
            raise TuneloopError(
                "the chat template does not render a conversation as the concatenation of its "
                "turns, so assistant tokens cannot be located; use a model whose template does"
            )
        labels[start : len(upto)] = full[start : len(upto)]
    return Example(record_id, tuple(full), tuple(labels))


def text_example(record_id: str, text: str, tokenizer: Any) -> Example:
    """A document: every token is trained on, and it ends with the end-of-sequence token."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return Example(record_id, tuple(ids), tuple(ids))


def to_example(record: Record, tokenizer: Any) -> Example:
    if record.shape == "text":
        return text_example(record.id, record.text or "", tokenizer)
    if record.shape == "completion":
        messages = [
            {"role": "user", "content": record.prompt or ""},
            {"role": "assistant", "content": record.completion or ""},
        ]
    else:
        messages = [{"role": m.role, "content": m.content} for m in record.messages]
    return chat_example(record.id, messages, tokenizer)


def truncate(example: Example, max_len: int) -> Example | None:
    """Cut to ``max_len`` tokens; None when nothing trainable is left."""
    if len(example.input_ids) <= max_len:
        return example
    cut = Example(example.record_id, example.input_ids[:max_len], example.labels[:max_len])
    return cut if cut.trained_tokens else None


@dataclass(frozen=True)
class Tokenized:
    examples: list[Example]
    dropped: list[tuple[str, str]]  # (record id, reason)


def tokenize(records: Iterable[Record], tokenizer: Any, max_len: int) -> Tokenized:
    """Tokenize every record; say why any record is left out."""
    examples, dropped = [], []
    for record in records:
        example = truncate(to_example(record, tokenizer), max_len)
        if example is None:
            dropped.append((record.id, "no_trainable_tokens_within_max_len"))
        else:
            examples.append(example)
    return Tokenized(examples, dropped)


def single_rows(examples: Sequence[Example]) -> list[Row]:
    """One example per row (no packing)."""
    return [
        Row(e.input_ids, e.labels, tuple(range(len(e.input_ids))), (e.record_id,)) for e in examples
    ]


def pack(examples: Sequence[Example], block_size: int) -> list[Row]:
    """Greedy packing in input order: an example starts a new row when it does not fit."""
    rows: list[Row] = []
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    members: list[str] = []
    for e in examples:
        if ids and len(ids) + len(e.input_ids) > block_size:
            rows.append(Row(tuple(ids), tuple(labels), tuple(positions), tuple(members)))
            ids, labels, positions, members = [], [], [], []
        ids.extend(e.input_ids)
        # An example's first token is never predicted from its own context: the token before
        # it in the row belongs to the previous example.
        labels.extend((IGNORE, *e.labels[1:]))
        positions.extend(range(len(e.input_ids)))
        members.append(e.record_id)
    if ids:
        rows.append(Row(tuple(ids), tuple(labels), tuple(positions), tuple(members)))
    return rows


def collate(rows: Sequence[Row], pad_id: int, packed: bool) -> dict[str, Any]:
    """Tensors for one micro-batch, padded to its longest row.

    Packed rows get no attention mask (position ids separate the examples; padding is one more
    example, with no loss). Unpacked rows get the usual attention mask.
    """
    import torch  # noqa: PLC0415 - heavy (torch)

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, row in enumerate(rows):
        n = len(row)
        ids[k, :n] = torch.tensor(row.input_ids)
        labels[k, :n] = torch.tensor(row.labels)
        positions[k, :n] = torch.tensor(row.position_ids)
        positions[k, n:] = torch.arange(width - n)
        mask[k, :n] = 1
    batch: dict[str, Any] = {"input_ids": ids, "labels": labels, "position_ids": positions}
    if not packed:
        batch["attention_mask"] = mask
    return batch
