"""Federated fine-tuning, measured: eval loss of FedAvg over three sites against centralized
training on the same total data, and FFA (A frozen and shared, B averaged) against plain
averaging of the A and B factors.

The records (Alpaca, from the shared data folder) are split at random among three sites of
unequal size. Each arm sees the same number of training examples: the federated arms run
``rounds`` rounds of ``local_steps`` steps at every site; the centralized arms run
sites × rounds × local_steps steps on the union. The sites run in this process one after
another, through the very functions Flower's client calls (``federated.site.local_round``) and
the aggregation the strategy applies (``weighted_mean`` + ``apply_update``): Flower moves the
tensors, it does not change them. ``product error`` is ‖B̄·Ā − mean(B_i·A_i)‖ / ‖mean(B_i·A_i)‖
after the last round: how far the aggregate is from the mean of the sites' updates.

    python -m bench.federated_bench          # SmolLM2-135M-Instruct (the demo's model), CPU
    python -m bench.federated_bench --tiny   # a ~100k-parameter Llama, seconds (a smoke test)
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from tuneloop.federated.factors import (
    Aggregation,
    Arrays,
    apply_update,
    product_error,
    weighted_mean,
)
from tuneloop.federated.server import fresh_adapter
from tuneloop.federated.site import local_round
from tuneloop.model.base import load_base
from tuneloop.records import Record
from tuneloop.train.data import Row, single_rows, tokenize
from tuneloop.train.loop import TrainSettings
from tuneloop.train.lora import LoraSettings

from bench.dp_bench import alpaca, base_model, eval_loss

OUT = Path("bench/out/federated")


def split(records: list[Record], shares: list[float], seed: int = 0) -> list[list[Record]]:
    """A random split into sites of the given relative sizes."""
    shuffled = records[:]
    random.Random(seed).shuffle(shuffled)
    cuts, acc = [], 0.0
    for share in shares[:-1]:
        acc += share
        cuts.append(round(acc / sum(shares) * len(shuffled)))
    bounds = [0, *cuts, len(shuffled)]
    return [shuffled[a:b] for a, b in itertools.pairwise(bounds)]


def federated_arm(
    model: Any,
    pad: int,
    sites: list[list[Row]],
    initial: Arrays,
    settings: TrainSettings,
    args: argparse.Namespace,
    aggregation: Aggregation,
) -> tuple[Arrays, float]:
    """``rounds`` rounds of FedAvg; the final global adapter and the last round's product error."""
    current, error = initial, 0.0
    local = settings.model_copy(update={"max_steps": args.local_steps})
    weights = [float(len(rows)) for rows in sites]
    for r in range(1, args.rounds + 1):
        deltas = []
        for i, rows in enumerate(sites):
            run_dir = OUT / aggregation / f"r{r}-s{i}"
            step = replace(local, seed=settings.seed + r)
            delta, _, _ = local_round(model, pad, (rows, []), step, run_dir, current, aggregation)
            deltas.append(delta)
        nxt = apply_update(current, weighted_mean(deltas, weights))
        locals_ = [apply_update(current, d) for d in deltas]
        error = product_error(locals_, weights, nxt)
        current = nxt
        print(json.dumps({"arm": aggregation, "round": r, "product_error": error}), flush=True)
    return current, error


def centralized_arm(
    model: Any,
    pad: int,
    rows: list[Row],
    initial: Arrays,
    settings: TrainSettings,
    steps: int,
    aggregation: Aggregation,
) -> Arrays:
    """One run on the union, as many examples as the federated arms saw."""
    run = settings.model_copy(update={"max_steps": steps})
    delta, _, _ = local_round(
        model, pad, (rows, []), run, OUT / f"central-{aggregation}", initial, aggregation
    )
    return apply_update(initial, delta)


def loss_of(model: Any, pad: int, val: list[Row], arrays: Arrays) -> float:
    from tuneloop.federated.site import set_global

    set_global(model, arrays, "naive")
    return eval_loss(model, pad, val)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    base = base_model(args.tiny, OUT)
    shutil.rmtree(OUT / "ffa", ignore_errors=True)
    shutil.rmtree(OUT / "naive", ignore_errors=True)
    model, tok, _ = load_base(str(base))
    lora = LoraSettings(
        r=args.rank, alpha=2 * args.rank, dropout=0.0, target_modules=("q_proj", "v_proj")
    )
    settings = TrainSettings(
        micro_batch=args.batch,
        grad_accum=1,
        lr=args.lr,
        warmup_steps=1,
        eval_every=10**6,
        save_every=10**6,
        packing=False,
        max_len=args.max_len,
        lora=lora,
        autocast=args.autocast,
    )
    model, initial = fresh_adapter(model, lora, settings.seed)
    pad = tok.pad_token_id
    records = alpaca(args.records)
    sites = [
        single_rows(tokenize(s, tok, args.max_len).examples) for s in split(records, args.shares)
    ]
    union = [row for rows in sites for row in rows]
    val = single_rows(tokenize(alpaca(args.val, offset=args.records), tok, args.max_len).examples)
    steps = len(sites) * args.rounds * args.local_steps
    results: list[dict[str, Any]] = [
        {"arm": "base model (no training)", "eval_loss": loss_of(model, pad, val, initial)}
    ]
    for aggregation in ("naive", "ffa"):
        start = time.perf_counter()
        final, error = federated_arm(model, pad, sites, initial, settings, args, aggregation)
        results.append(
            {
                "arm": f"federated, {aggregation}",
                "eval_loss": loss_of(model, pad, val, final),
                "product_error": error,
                "seconds": time.perf_counter() - start,
            }
        )
        print(json.dumps(results[-1]), flush=True)
    for aggregation in ("naive", "ffa"):
        start = time.perf_counter()
        final = centralized_arm(model, pad, union, initial, settings, steps, aggregation)
        name = "centralized" + (", A frozen" if aggregation == "ffa" else "")
        results.append(
            {
                "arm": name,
                "eval_loss": loss_of(model, pad, val, final),
                "seconds": time.perf_counter() - start,
            }
        )
        print(json.dumps(results[-1]), flush=True)
    for r in results:
        r["sites"] = [len(s) for s in sites]
    return results


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| arm | eval loss | product error (last round) | train s |", "|---|---:|---:|---:|"]
    for r in results:
        err = f"{r['product_error']:.3f}" if "product_error" in r else "—"
        secs = f"{r['seconds']:.0f}" if "seconds" in r else "—"
        lines.append(f"| {r['arm']} | {r['eval_loss']:.4f} | {err} | {secs} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="a tiny random Llama (smoke test)")
    ap.add_argument("--records", type=int, default=200, help="Alpaca records, split among sites")
    ap.add_argument("--shares", type=float, nargs="+", default=[0.2, 0.3, 0.5])
    ap.add_argument("--val", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--local-steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--autocast", default="off", help="bfloat16: faster on CPUs with AVX-512 BF16")
    args = ap.parse_args(argv)
    results = run(args)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps({"args": vars(args), "results": results}))
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
