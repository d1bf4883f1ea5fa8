"""The evaluator's two numbers per item from one forward pass, against the usual two passes.

The usual way (Hugging Face ``generate`` for the answer, then a forward pass over prompt +
reference for its loss, as lm-evaluation-harness runs ``generate_until`` and ``loglikelihood``
apart) sends every prompt through the model twice. ``evalside/prefill.py`` sends it once. Both
ways score the same real items (GSM8K and MMLU questions, the gate's forgetting suite, and the
demo's support tickets under their system prompt) with SmolLM2-135M-Instruct, greedy, 32 new
tokens, batches of 16, in one process, each on a fresh evaluator with no answer cache.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

from tuneloop.evalside.evaluator import Evaluator, load_model_for_eval
from tuneloop.evalside.suites import SuiteItem, forgetting_suite, with_system_prompt
from tuneloop.model.fetch import fetch_default

from bench import data

N = 48  # items per set


def ticket_items(n: int) -> list[SuiteItem]:
    """The demo's eval items (support tickets answered in JSON), under the app's system prompt."""
    from tuneloop.demo import templates
    from tuneloop.demo.generate import generate
    from tuneloop.evalside.suites import item_from_record
    from tuneloop.records import record_from_obj

    made = generate(0, 60, 600, datetime(2026, 10, 1, tzinfo=UTC), 42)
    prompt = templates.SYSTEM_PROMPTS["chat_widget"]
    items = [item_from_record(record_from_obj(obj), "task") for obj in made.eval_items[:n]]
    return [with_system_prompt(item, prompt) for item in items]


def _score(model: Any, tok: Any, items: list[SuiteItem], shared: bool) -> dict[str, Any]:
    ev = Evaluator(model, tok, "bench", None, max_new_tokens=32, batch_size=16)
    ev.shared_pass = shared
    start = time.perf_counter()
    answers = ev._answers(items)
    return {"seconds": time.perf_counter() - start, "answers": answers}


def run() -> list[dict[str, Any]]:
    model, tok, _ = load_model_for_eval(str(fetch_default()))
    sets = {"GSM8K + MMLU": list(forgetting_suite(data.root(), N).items),
            "support tickets": ticket_items(N)}  # fmt: skip
    _score(model, tok, sets["GSM8K + MMLU"][:4], True)  # warm-up: first-call costs
    rows = []
    for name, items in sets.items():
        apart = _score(model, tok, items, False)
        once = _score(model, tok, items, True)
        same = sum(once["answers"][i.id].prediction == apart["answers"][i.id].prediction
                   for i in items)  # fmt: skip
        gaps = [abs(once["answers"][i.id].loss - apart["answers"][i.id].loss)
                / max(1e-9, abs(apart["answers"][i.id].loss)) for i in items
                if not math.isnan(apart["answers"][i.id].loss)]  # fmt: skip
        rows.append({"set": name, "items": len(items), "two_pass_s": apart["seconds"],
                     "shared_s": once["seconds"], "same_answers": same,
                     "max_loss_gap": max(gaps, default=0.0)})  # fmt: skip
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
