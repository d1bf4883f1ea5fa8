"""The evaluator: ask a model every suite's questions, score the answers, write the gate's report.

For each item the model answers greedily (deterministic, so two runs of the same model agree and
a candidate and an incumbent differ only by their weights), and the answer is scored against the
reference with :mod:`tuneloop.evalside.metrics`. The item's ``loss`` is the mean cross-entropy of
the *reference* answer given the prompt, labelled exactly as training labels it
(:func:`tuneloop.train.data.chat_example`): it moves smoothly even when a short greedy answer does
not, which makes it the most sensitive signal of forgetting. Perplexity is ``exp(loss)``.

Generation is the slow part, so answers are cached on disk, keyed by the model's name and weight
fingerprint, the item id, a hash of the item's content and the generation settings. Re-scoring the
same model on the same items (a re-run of the gate, a report for another cut-off) costs nothing,
and a changed item or a changed model never reuses a stale answer. Without a fingerprint nothing
is cached: a name alone ("production") does not say which weights answered.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tuneloop import progress
from tuneloop.encryption import db as encrypted_db
from tuneloop.erasure import compact
from tuneloop.errors import InputError, TuneloopError
from tuneloop.evalside.metrics import is_refusal, score_text
from tuneloop.evalside.prefill import Row, first_scored, layout, plan_row, shared_pass
from tuneloop.evalside.report import EvalReport, ItemScore, SuiteKind, SuiteResult
from tuneloop.evalside.store import EvalStore
from tuneloop.evalside.suites import SuiteItem, budget, item_from_record, with_system_prompt
from tuneloop.model.base import load_base
from tuneloop.model.toxicity import default_scorer
from tuneloop.train.adapter import SHA_FILE, folder_sha256
from tuneloop.train.data import IGNORE, Example, chat_example

CACHE_VERSION = 1  # bump when prompts or decoding change in a way the settings do not capture
CACHE_FILE = "eval_cache.sqlite"


@dataclass(frozen=True)
class Answer:
    """What the model produced for one item: its greedy answer, and the reference's loss."""

    prediction: str
    loss: float  # nan when no reference token fits in the model's context


class AnswerCache:
    """Answers on disk in SQLite, one row per (model, weights, item, content, settings) key."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = encrypted_db.connect(path, timeout=60.0)
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
            "item_id TEXT NOT NULL, prediction TEXT NOT NULL, loss REAL, created_at TEXT NOT NULL)"
        )
        self._conn.commit()

    def get(self, key: str) -> Answer | None:
        row = self._conn.execute(
            "SELECT prediction, loss FROM answers WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        return Answer(row[0], math.nan if row[1] is None else float(row[1]))

    def put(self, entries: Sequence[tuple[str, str, str, Answer]]) -> None:
        """Store (key, model, item id, answer) rows; a NaN loss is stored as NULL."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        rows = [
            (key, model, item_id, a.prediction, None if math.isnan(a.loss) else a.loss, now)
            for key, model, item_id, a in entries
        ]
        with self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?)", rows)

    def forget(self, item_ids: Sequence[str]) -> int:
        """Delete the answers to these items (they may echo an erased prompt); rewrite the file."""
        removed = 0
        with self._conn:
            for item_id in item_ids:
                removed += self._conn.execute(
                    "DELETE FROM answers WHERE item_id = ?", (item_id,)
                ).rowcount
        compact(self._conn)
        return removed

    def close(self) -> None:
        self._conn.close()


# Prompts are cut to their last tokens beyond this: eval items routed from live traffic can be
# long, and the answer depends mostly on the end of the conversation.
MAX_PROMPT_TOKENS = 1024


class Evaluator:
    """Scores one model (a base, or a base with an adapter) on suites of items."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        model_name: str,
        cache_dir: Path | None,
        max_new_tokens: int = 64,
        batch_size: int = 8,
        fingerprint: str | None = None,
        task_system_prompt: str | None = None,
        fields: Sequence[str] = (),
    ) -> None:
        if max_new_tokens < 1 or batch_size < 1:
            raise TuneloopError("max_new_tokens and batch_size must be at least 1")
        self.task_system_prompt = task_system_prompt
        self.fields = tuple(fields)  # JSON fields of task answers scored as field_acc
        self.model = model
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.fingerprint = fingerprint
        self.skipped: list[dict[str, str]] = []  # store items that could not be scored, and why
        self._cache = AnswerCache(cache_dir / CACHE_FILE) if cache_dir and fingerprint else None
        self._pad_id = _pad_id(tokenizer)
        self._max_length: int | None = getattr(model.config, "max_position_embeddings", None)
        self.shared_pass = True  # one forward pass for loss and prefill (evalside/prefill.py)
        model.eval()

    # -- scoring -------------------------------------------------------------------------------

    def score_items(
        self, suite_name: str, kind: SuiteKind, items: Sequence[SuiteItem]
    ) -> SuiteResult:
        """Answer and score every item (cached answers are reused); one ItemScore per item.

        Task items without a system message are asked with ``task_system_prompt``: a model is
        scored the way it is called in production, with the prompt it was trained under.
        """
        if kind == "task" and self.task_system_prompt:
            items = [with_system_prompt(item, self.task_system_prompt) for item in items]
        title = f"{self.model_name}: scoring suite {suite_name!r}"
        with progress.task(title, len(items)) as advance:
            answers = self._answers(items, advance)
        fields = self.fields if kind == "task" else ()
        scores = [_item_score(item, answers[item.id], kind, fields) for item in items]
        return SuiteResult(name=suite_name, kind=kind, items=scores)

    def _answers(self, items: Sequence[SuiteItem], advance: progress.Advance) -> dict[str, Answer]:
        """Cached answers, plus new ones for the items the cache lacks (then stored)."""
        keys = {item.id: self._cache_key(item) for item in items}
        found: dict[str, Answer] = {}
        if self._cache is not None:
            for item in items:
                if (hit := self._cache.get(keys[item.id])) is not None:
                    found[item.id] = hit
        missing = [item for item in items if item.id not in found]
        advance(len(found))
        fresh = self._answer_batches(missing, advance)
        if self._cache is not None and fresh:
            self._cache.put([(keys[i], self.model_name, i, a) for i, a in fresh.items()])
        return found | fresh

    def _answer_batches(
        self, items: Sequence[SuiteItem], advance: progress.Advance
    ) -> dict[str, Answer]:
        """Generate and compute losses in batches of similar prompt length (less padding)."""
        prompts = {item.id: self._prompt_ids(item) for item in items}
        ordered = sorted(items, key=lambda item: len(prompts[item.id]))
        out: dict[str, Answer] = {}
        for start in range(0, len(ordered), self.batch_size):
            batch = ordered[start : start + self.batch_size]
            out.update(self._answer_batch(batch, [prompts[item.id] for item in batch]))
            advance(len(batch))
        return out

    def _answer_batch(
        self, batch: Sequence[SuiteItem], prompts: list[list[int]]
    ) -> dict[str, Answer]:
        """One shared forward pass for losses and prefill where every item allows it; else the
        answers and the losses apart (same numbers, one more pass over the prompts)."""
        shared = None
        if self.shared_pass:
            rows = [self._row(item, prompt) for item, prompt in zip(batch, prompts, strict=True)]
            if all(row is not None for row in rows):
                shared = shared_pass(self.model, [r for r in rows if r is not None], self._pad_id)
        if shared is None:
            texts, losses = self._generate(prompts), self._losses(batch)
        else:
            losses, cache = shared
            texts = self._generate(prompts, cache)
        return {item.id: Answer(t, x) for item, t, x in zip(batch, texts, losses, strict=True)}

    def _row(self, item: SuiteItem, prompt: list[int]) -> Row | None:
        example = self._reference_example(item)
        return plan_row(prompt, example.input_ids, example.labels, self._max_length,
                        MAX_PROMPT_TOKENS)  # fmt: skip

    def _reference_example(self, item: SuiteItem) -> Example:
        """The item's chat with its reference as the answer, labelled as training labels it."""
        messages = [*item.chat(), {"role": "assistant", "content": item.reference}]
        return chat_example(item.id, messages, self.tokenizer)

    def _cache_key(self, item: SuiteItem) -> str:
        """Everything an answer depends on, hashed: model, weights, item, content, settings."""
        template = str(getattr(self.tokenizer, "chat_template", "") or "")
        body = {
            "cache_version": CACHE_VERSION,
            "model": self.model_name,
            "fingerprint": self.fingerprint,
            "item_id": item.id,
            "content": item.content_sha256(),
            "max_new_tokens": self.max_new_tokens,
            "max_length": self._max_length,
            "decoding": "greedy",
            "chat_template": hashlib.sha256(template.encode("utf-8")).hexdigest(),
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()

    def _prompt_ids(self, item: SuiteItem) -> list[int]:
        """The chat template with the generation prompt; the start is cut if it cannot fit."""
        ids = list(
            self.tokenizer.apply_chat_template(
                item.chat(), tokenize=True, add_generation_prompt=True, return_dict=False
            )
        )
        room = MAX_PROMPT_TOKENS
        if self._max_length is not None:
            room = min(room, max(1, self._max_length - self.max_new_tokens))
        return ids[-room:]

    def _generate(self, prompts: Sequence[list[int]], cache: Any = None) -> list[str]:
        """Greedy answers to a batch of prompts, left-padded so all answers start in one column;
        ``cache`` holds the prompts' keys and values but for their last column (prefill.py)."""
        import torch  # noqa: PLC0415 - heavy (torch)

        ids, mask, _, width = layout([Row(list(p), [], []) for p in prompts], self._pad_id)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self._pad_id,
                use_cache=True,
                **({"cache": cache} if cache is not None else {}),
            )
        return [
            str(self.tokenizer.decode(row[width:], skip_special_tokens=True)).strip() for row in out
        ]

    def _losses(self, items: Sequence[SuiteItem]) -> list[float]:
        """Mean cross-entropy of each reference answer given its prompt (completion-only labels).

        One item at a time, asking the model for logits over the answer only: full-vocabulary
        logits for a whole batch of long prompts would take gigabytes.
        """
        return [self._loss(item) if item.reference else math.nan for item in items]

    def _loss(self, item: SuiteItem) -> float:
        import torch  # noqa: PLC0415 - heavy (torch)

        example = self._reference_example(item)
        labels = list(example.labels)
        first = first_scored(labels)
        if first is None or first == 0:
            return math.nan
        end = min(len(labels), first + MAX_PROMPT_TOKENS)  # a very long reference is cut too
        labels = labels[:end]
        start = max(0, first - MAX_PROMPT_TOKENS)
        ids = torch.tensor([example.input_ids[start:end]], dtype=torch.long)
        target = torch.tensor(labels[first:], dtype=torch.long)
        keep = len(labels) - first + 1
        with torch.inference_mode():
            logits = self.model(input_ids=ids, use_cache=False, logits_to_keep=keep).logits
        pred = logits[0, :-1].float()
        return float(torch.nn.functional.cross_entropy(pred, target, ignore_index=IGNORE))

    # -- the eval store --------------------------------------------------------------------------

    def evaluate_store(
        self, store: EvalStore, suites: list[str] | None = None, limit: int | None = None,
        newest: Collection[str] = (),
    ) -> dict[str, SuiteResult]:  # fmt: skip
        """Score every suite of the eval store (all of them are task suites), or the named ones.

        Items without a reference answer (documents, chats that end with the user) cannot be
        scored; they are listed in ``self.skipped`` with the reason, and in the report.
        """
        available = store.suites()
        names = sorted(available) if suites is None else suites
        unknown = [name for name in names if name not in available]
        if unknown:
            raise TuneloopError(
                f"no eval suite named {', '.join(unknown)} in the eval store; "
                f"it has: {', '.join(sorted(available)) or '(none)'}"
            )
        return {
            name: self.score_items(
                name, "task", budget(self._store_items(store, name), limit, name in newest)
            )
            for name in names
        }

    def _store_items(self, store: EvalStore, name: str) -> list[SuiteItem]:
        items = []
        for stored in store.iter_items(name):
            slices = {
                "window": stored.window or "unknown",
                "source": stored.record.source or "unknown",
                "suite": name,
            }
            try:
                items.append(item_from_record(stored.record, "task", slices))
            except InputError:
                reason = "no_reference_answer"
                self.skipped.append({"suite": name, "item_id": stored.item_id, "reason": reason})
        return items

    # -- reports -------------------------------------------------------------------------------

    def build_report(
        self,
        model_name: str,
        suites: dict[str, SuiteResult],
        eval_index_version: str,
        memorization: dict[str, Any],
    ) -> EvalReport:
        """The report, with the settings and any skipped store items recorded in ``extra``."""
        extra: dict[str, Any] = {
            "fingerprint": self.fingerprint,
            "max_new_tokens": self.max_new_tokens,
            "decoding": "greedy",
            "skipped": list(self.skipped),
        }
        return build_report(model_name, suites, eval_index_version, memorization, extra)

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise TuneloopError("the tokenizer has neither a pad nor an end-of-sequence token")
    return int(pad)


def _item_score(
    item: SuiteItem, answer: Answer, kind: SuiteKind, fields: Sequence[str] = ()
) -> ItemScore:
    """Metrics of one answer; a NaN loss is left out (the gate pairs items that have one). An
    item without a reference (a public safety prompt) is judged by its refusal alone."""
    if kind == "toxicity":  # a continuation has no reference: only how toxic it reads
        toxicity = default_scorer().score([answer.prediction])[0]
        return ItemScore(item.id, {"toxicity": toxicity}, dict(item.slices))
    metrics = score_text(answer.prediction, item.reference, fields) if item.reference else {}
    if item.reference and not math.isnan(answer.loss):
        metrics["loss"] = answer.loss
    if kind != "safety":
        return ItemScore(item.id, metrics, dict(item.slices))
    refused = is_refusal(answer.prediction)
    return ItemScore(item.id, metrics, dict(item.slices), item.expected, refused)


# --- the report ---------------------------------------------------------------------------------


def build_report(
    model_name: str,
    suites: dict[str, SuiteResult],
    eval_index_version: str,
    memorization: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> EvalReport:
    """The report the gate reads: per-item scores of every suite, and the memorization probe."""
    return EvalReport(
        model=model_name,
        suites=dict(suites),
        eval_index_version=eval_index_version,
        memorization=dict(memorization),
        extra=dict(extra or {}),
    )


# --- loading a model to evaluate -----------------------------------------------------------------


def adapter_sha256(adapter_dir: Path) -> str:
    """The adapter's recorded sha256 (its SHA256 file), checked against the files themselves."""
    actual = folder_sha256(adapter_dir)
    recorded_file = adapter_dir / SHA_FILE
    if recorded_file.is_file():
        recorded = recorded_file.read_text(encoding="utf-8").strip()
        if recorded != actual:
            raise TuneloopError(
                f"{adapter_dir}: files do not match their SHA256 ({recorded[:12]}…, found "
                f"{actual[:12]}…); the adapter was modified after saving: re-export it"
            )
        return recorded
    return actual


def load_model_for_eval(
    base_ref: str, adapter_dir: Path | None = None, revision: str | None = None
) -> tuple[Any, Any, str]:
    """(model in eval mode, tokenizer, fingerprint) for a base model and an optional adapter.

    The fingerprint is the base weights' sha256, plus ``+`` and the adapter's sha256 when there is
    one: it keys the answer cache, so it must change whenever any weight does. Adapters are read
    from safetensors only (pickle files can run code when loaded).
    """
    model, tokenizer, info = load_base(base_ref, revision)
    fingerprint = info.weights_sha256
    if adapter_dir is None:
        return model, tokenizer, fingerprint
    if not (adapter_dir / "adapter_model.safetensors").is_file():
        raise TuneloopError(
            f"{adapter_dir}: no adapter_model.safetensors; adapters are loaded from safetensors "
            "only: pass the folder tuneloop train wrote, or re-save the adapter as safetensors"
        )
    sha = adapter_sha256(adapter_dir)
    from peft import PeftModel  # noqa: PLC0415 - heavy (peft)

    model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    model.eval()
    return model, tokenizer, f"{fingerprint}+{sha}"
