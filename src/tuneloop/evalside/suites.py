"""Evaluation suites: what the evaluator asks a model, and the answer it compares against.

A suite item is a prompt (the conversation up to the answer), a reference answer, and slices
(labels such as source or window that reports can be broken down by). Three sources:

- **Task suites** come from the eval store (see :func:`item_from_record`): what this deployment's
  users ask, held out from training by the gateway.
- **Forgetting** (general abilities a fine-tune must keep): GSM8K and MMLU test questions when the
  public data folder is at hand, else a small built-in list shipped in ``data/general.jsonl``. The
  public data is never copied into the project: it is read where it lies, or not at all.
- **Safety** (``data/safety.jsonl``, written by this project): harmful requests the model must
  refuse, and benign requests that merely sound edgy ("how do I kill a Python process"), which it
  must not refuse. Both halves matter: a fine-tune can lose its refusals, or learn to refuse
  everything, and only the pair shows which.

Users add their own suites in the same JSONL shape (:func:`load_user_suite`): a chat record whose
last message is the assistant's reference answer (or prompt/completion), and for safety suites an
``"expected": "refuse" | "comply"`` field.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import get_args

from tuneloop.errors import InputError, TuneloopError
from tuneloop.evalside.report import Expectation, SuiteKind
from tuneloop.records import Message, Record, read_records

SAFETY_SUITE = "safety"
FORGETTING_SUITE = "forgetting"
_EXPECTATIONS: tuple[str, ...] = get_args(Expectation)
_LETTERS = "ABCD"
_GSM8K_INSTRUCTION = "Solve the problem. Reply with the final number only."
_MMLU_INSTRUCTION = "Reply with the letter of the correct choice only."


@dataclass(frozen=True)
class SuiteItem:
    """One question of a suite: the prompt without its answer, and the reference answer."""

    id: str
    messages: tuple[Message, ...]
    reference: str
    slices: dict[str, str] = field(default_factory=dict)
    expected: Expectation | None = None  # safety items only

    def chat(self) -> list[dict[str, str]]:
        """The prompt in the shape chat templates take."""
        return [{"role": m.role, "content": m.content} for m in self.messages]

    def content_sha256(self) -> str:
        """A hash of what is asked and what is expected: a changed item is a new cache entry."""
        body = {"messages": self.chat(), "reference": self.reference}
        raw = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Suite:
    """A named list of items of one kind (task, forgetting or safety)."""

    name: str
    kind: SuiteKind
    items: list[SuiteItem]


def _split_answer(record: Record) -> tuple[tuple[Message, ...], str] | None:
    """(prompt messages, reference) of a record, or None when it carries no reference answer."""
    if record.shape == "completion":
        return (Message("user", record.prompt or ""),), record.completion or ""
    if record.shape == "chat" and len(record.messages) >= 2:
        *prompt, last = record.messages
        if last.role == "assistant":
            return tuple(prompt), last.content
    return None


def _expected(record: Record, where: Path | str, line: int | None) -> Expectation:
    value = record.meta.get("expected")
    if value == "refuse":
        return "refuse"
    if value == "comply":
        return "comply"
    raise InputError(
        where,
        line,
        f"safety item {record.id!r} has expected={value!r}",
        'add "expected": ' + " or ".join(f'"{e}"' for e in _EXPECTATIONS),
    )


def item_from_record(
    record: Record,
    kind: SuiteKind,
    slices: dict[str, str] | None = None,
    where: Path | str = "<eval store>",
    line: int | None = None,
) -> SuiteItem:
    """A suite item from a stored record: its last assistant message is the reference answer.

    Raises InputError (naming ``where`` and ``line``) when the record has no reference answer, or
    when a safety item does not say whether it should be refused.
    """
    split = _split_answer(record)
    if split is None:
        raise InputError(
            where,
            line,
            f"eval item {record.id!r} has no reference answer",
            "give a chat record whose last message is the assistant's answer, "
            "or prompt and completion",
        )
    prompt, reference = split
    found = dict(slices or {})
    category = record.meta.get("category")
    if isinstance(category, str):
        found.setdefault("category", category)
    expected = _expected(record, where, line) if kind == "safety" else None
    if expected is not None:
        found.setdefault("expected", expected)
    return SuiteItem(record.id, prompt, reference, found, expected)


def load_user_suite(path: Path, kind: SuiteKind, name: str | None = None) -> Suite:
    """A suite from a JSONL file of records with reference answers (the file stem names it)."""
    suite_name = name or path.stem
    items = []
    for line, record in read_records(path):
        slices = {"suite": suite_name, "source": record.source or "unknown"}
        items.append(item_from_record(record, kind, slices, path, line))
    return Suite(suite_name, kind, items)


def _builtin(filename: str, kind: SuiteKind, name: str) -> Suite:
    """A suite shipped in the package's data folder (package data, so it works from a wheel)."""
    with resources.as_file(resources.files("tuneloop.evalside") / "data" / filename) as path:
        return load_user_suite(path, kind, name)


def safety_suite() -> Suite:
    """The built-in safety suite: 15 requests to refuse, 15 edgy-but-benign ones to answer."""
    return _builtin("safety.jsonl", "safety", SAFETY_SUITE)


def over_refusal_suite() -> Suite:
    """120 safe prompts that sound unsafe, in ten kinds (homonyms, figurative speech, safe
    targets and contexts, definitions, history, public facts, safety information, everyday
    words), written by this project in the manner of XSTest: a refusal of any is over-refusal."""
    return _builtin("over_refusal.jsonl", "safety", SAFETY_SUITE)


def builtin_general_suite() -> Suite:
    """The built-in general-knowledge questions (the forgetting suite without public data)."""
    return _builtin("general.jsonl", "forgetting", FORGETTING_SUITE)


def spread(count: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(count)``: a deterministic, varied sample.

    Used wherever a suite is cut to a budget: eval-store suites are in arrival order, so the
    first ``k`` would all come from the oldest time windows, and a memorization probe needs
    items from both sides of a training cut-off.
    """
    k = min(k, count)
    if k <= 0:
        return []
    return [i * count // k for i in range(k)]


def with_system_prompt(item: SuiteItem, prompt: str) -> SuiteItem:
    """The item asked under ``prompt`` (unless it brings a system message of its own)."""
    if item.messages and item.messages[0].role == "system":
        return item
    return replace(item, messages=(Message("system", prompt), *item.messages))


# The slices a cut suite keeps in proportion, level by level: the expected outcome first (a safety
# suite's two rates each need items), then source and category within each outcome.
STRATA = (("expected",), ("source", "category"))


def budget(items: list[SuiteItem], limit: int | None, newest: bool = False) -> list[SuiteItem]:
    """At most ``limit`` items (all of them without a limit), stratified: each expected outcome,
    then each source and category within it, keeps its share (at least one while the limit
    allows), spread evenly over its items, so a small stratum is not left out of the sample by
    chance. With ``newest``, the suite's last ``limit`` items instead (items come in append
    order): a suite of live traffic is scored on what users ask now, not on a spread over every
    week it has seen. The order of the suite is kept."""
    if not limit or len(items) <= limit:
        return items
    if newest:
        return items[-limit:]
    kept = _stratified(items, list(range(len(items))), limit, STRATA)
    return [items[i] for i in sorted(kept)]


def _stratified(
    items: list[SuiteItem], indices: list[int], limit: int, levels: tuple[tuple[str, ...], ...]
) -> list[int]:
    """``limit`` of ``indices``: split over the strata of the first level, then the next."""
    if not levels:
        return [indices[j] for j in spread(len(indices), limit)]
    strata: dict[tuple[str, ...], list[int]] = {}
    for i in indices:
        strata.setdefault(tuple(items[i].slices.get(k, "") for k in levels[0]), []).append(i)
    shares = _shares([len(v) for v in strata.values()], limit)
    return [
        i
        for group, share in zip(strata.values(), shares, strict=True)
        for i in _stratified(items, group, share, levels[1:])
    ]


def _shares(sizes: list[int], limit: int) -> list[int]:
    """``limit`` split over strata of these sizes in proportion (largest remainders first), with
    one item for every stratum while the limit allows: a stratum's absence is a blind spot."""
    total = sum(sizes)
    floor = 1 if limit >= len(sizes) else 0
    exact = [max(floor, limit * n / total) for n in sizes]
    shares = [min(n, int(e)) for n, e in zip(sizes, exact, strict=True)]
    order = sorted(range(len(sizes)), key=lambda i: (shares[i] - exact[i], i))
    spare = limit - sum(shares)
    while spare > 0:
        progressed = False
        for i in order:
            if spare and shares[i] < sizes[i]:
                shares[i] += 1
                spare -= 1
                progressed = True
        if not progressed:
            break
    while spare < 0:  # the floor of one per stratum overshot: take back from the largest
        i = max(range(len(sizes)), key=lambda j: (shares[j], -j))
        shares[i] -= 1
        spare += 1
    return shares


def gsm8k_items(folder: Path, k: int) -> list[SuiteItem]:
    """GSM8K test questions; the reference is the final answer after ``####``."""
    path = folder / "test.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    items = []
    for index in spread(len(lines), k):
        row = json.loads(lines[index])
        answer = str(row["answer"]).rsplit("####", 1)[-1].strip().replace(",", "")
        prompt = f"{row['question']}\n{_GSM8K_INSTRUCTION}"
        slices = {"suite": FORGETTING_SUITE, "source": "gsm8k"}
        items.append(
            SuiteItem(f"gsm8k-test-{index + 1}", (Message("user", prompt),), answer, slices)
        )
    return items


def _mmlu_rows(folder: Path) -> Iterator[tuple[str, int, list[str]]]:
    """(subject, row number, row) of every MMLU test question, round-robin over the subjects."""
    tables = []
    for path in sorted((folder / "test").glob("*_test.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))[1:]  # the first row is the header
        tables.append((path.name.removesuffix("_test.csv"), rows))
    depth = max((len(rows) for _, rows in tables), default=0)
    for i in range(depth):
        for subject, rows in tables:
            if i < len(rows) and len(rows[i]) == 6:
                yield subject, i + 1, rows[i]


def mmlu_items(folder: Path, k: int) -> list[SuiteItem]:
    """MMLU test questions as lettered multiple choice; the reference is the answer letter."""
    items: list[SuiteItem] = []
    for subject, number, row in _mmlu_rows(folder):
        if len(items) >= k:
            break
        question, choices, answer = row[0], row[1:5], row[5]
        if not answer.strip().isdigit() or not 0 <= int(answer) < len(_LETTERS):
            continue
        options = "\n".join(
            f"{letter}. {text}" for letter, text in zip(_LETTERS, choices, strict=True)
        )
        prompt = f"{question}\n{options}\n{_MMLU_INSTRUCTION}"
        slices = {"suite": FORGETTING_SUITE, "source": "mmlu", "subject": subject}
        item_id = f"mmlu-{subject}-{number}"
        items.append(SuiteItem(item_id, (Message("user", prompt),), _LETTERS[int(answer)], slices))
    return items


def forgetting_suite(shared_data: Path | None, n: int = 50) -> Suite:
    """General-ability items: half GSM8K, half MMLU from ``shared_data``, else the built-in list.

    ``shared_data`` is the public data folder (the one holding ``gsm8k/`` and ``mmlu/``). Either
    data set alone is used for all ``n`` items when the other is missing. The selection is
    deterministic, so the same items are asked of every model and their scores can be paired.
    """
    if n < 1:
        raise TuneloopError(f"the forgetting suite needs at least one item, not n={n}")
    gsm8k = shared_data / "gsm8k" if shared_data else None
    mmlu = shared_data / "mmlu" if shared_data else None
    has_gsm8k = gsm8k is not None and (gsm8k / "test.jsonl").is_file()
    has_mmlu = mmlu is not None and (mmlu / "test").is_dir()
    if not (has_gsm8k or has_mmlu):
        general = builtin_general_suite()
        return Suite(FORGETTING_SUITE, "forgetting", general.items[:n])
    share = n // 2 if has_gsm8k and has_mmlu else n
    items = gsm8k_items(gsm8k, share) if has_gsm8k and gsm8k else []
    if has_mmlu and mmlu:
        items += mmlu_items(mmlu, n - len(items))
    return Suite(FORGETTING_SUITE, "forgetting", items)
