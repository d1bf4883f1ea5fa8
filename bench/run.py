"""``make bench``: every benchmark, printed as tables with the peer library side by side.

Set TUNELOOP_BENCH_SKIP_STREAM=1 to skip the 1M-record streaming run (it writes ~1 GB),
TUNELOOP_BENCH_SKIP_TRAIN=1 to skip the training comparison (it fetches SmolLM2 once),
TUNELOOP_BENCH_SKIP_EVAL=1 to skip the evaluator's one-pass vs two-pass table
(TUNELOOP_BENCH_ONLY=eval runs only it), and
TUNELOOP_BENCH_SKIP_SERVE=1 to skip the serving benchmarks (about ten minutes on two cores);
TUNELOOP_BENCH_ONLY=serve runs only those, TUNELOOP_BENCH_ONLY=quality only the quality table,
TUNELOOP_BENCH_ONLY=pii only the names and addresses table, TUNELOOP_BENCH_ONLY=toxicity only
the toxicity classifier's table, TUNELOOP_BENCH_ONLY=stores only the
stores on SQLite and PostgreSQL, TUNELOOP_BENCH_ONLY=privacy only DP training (ε = 8 vs non-private,
canary exposure) and federated vs centralized training (about 30 minutes together;
TUNELOOP_BENCH_SKIP_PRIVACY=1 leaves them out of the full run).
The public data sets are read from ``--data DIR`` (default ../shared/data); when one is missing
the run stops at once with one line saying which and how to point at them (exit code 2).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from bench import (
    data,
    dedup_bench,
    eval_bench,
    fairness_bench,
    latency_bench,
    names_general,
    pii_names_bench,
    quality_bench,
    serve_bench,
    store_bench,
    stream_bench,
    toxicity_bench,
    train_bench,
)

TARGETS = {
    "speedup": 15.0,
    "recall": 0.97,
    "peak_mb": 1024.0,
    "p99_ms": 1.0,
    "stream_mb": 2048.0,
    "train_speedup": 1.3,
    "train_loss_gap": 0.02,
    "eval_speedup": 1.2,
    "eval_same": 0.95,
    "eval_loss_gap": 1e-3,
    "serve_speedup": 4.0,
    "promote_s": 0.25,
    "switch_ms": 20.0,
    "router_p99_s": 0.001,
    "quality_drop": 0.005,
    "person": 0.85,
    "person_general": 0.8,
    "toxicity_auroc": 0.7,
}
MUST_KEEP = ("gsm8k", "mmlu", "bbh", "alpaca (llama_factory_demo)", "self_instruct")


def _ok(flag: bool) -> str:
    return "yes" if flag else "NO"


CORPORA = {
    "planted": "100,000 real documents, 10% planted near-copies",
    "clustered": "100,000 real documents, 30% near-copies in clusters of 2-250",
}


def dedup_table() -> bool:
    results = [_dedup_table(kind) for kind in CORPORA]  # both tables, whatever the first says
    return all(results)


def _dedup_table(kind: str) -> bool:
    rows = dedup_bench.run(kind=kind)
    ours, peer = rows[0], rows[1]
    speedup = peer["process_seconds"] / ours["process_seconds"]
    print(f"\n## Near-duplicate removal, {CORPORA[kind]} (threshold 0.8, 128 permutations)\n")
    print("| tool | seconds (read → write) | peak RSS MB | removed | recall (planted, J ≥ 0.8) "
          "| reported pairs below 0.8 | bands × rows |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['tool']} | {r['process_seconds']:.2f} | {r['peak_rss_mb']:.0f} | "
              f"{r['reported']} | {r['recall']:.4f} | {r['below_threshold']} | "
              f"{r['bands']} × {r['rows']} |")  # fmt: skip
    checks = {
        f"speed-up ≥ {TARGETS['speedup']:.0f}× (got {speedup:.1f}×)": speedup >= TARGETS["speedup"],
        f"recall ≥ {TARGETS['recall']}": ours["recall"] >= TARGETS["recall"],
        "no reported pair below the threshold": ours["below_threshold"] == 0,
        f"peak memory ≤ {TARGETS['peak_mb']:.0f} MB": ours["peak_rss_mb"] <= TARGETS["peak_mb"],
    }
    for name, flag in checks.items():
        print(f"- {name}: {_ok(flag)}")
    return all(checks.values())


def quality_table() -> bool:
    results = quality_bench.run()
    print("\n## Quality filters on clean public sets (clean + quality blocks, default settings)\n")
    print("\n".join(quality_bench.table(results)))
    limit = TARGETS["quality_drop"]
    checks = {
        f"{r.name}: ≤ {limit:.1%} dropped (got {r.drop_rate:.2%})": r.drop_rate <= limit
        for r in results
        if r.name in MUST_KEEP
    }
    for name, flag in checks.items():
        print(f"- {name}: {_ok(flag)}")
    return all(checks.values())


def names_table() -> bool:
    rows, real = pii_names_bench.measure()
    print("\n## People's names and street addresses (curate pii, Faker templates, 12 locales)\n")
    print("\n".join(pii_names_bench.table(rows, real, 2000)))
    general = names_general.measure(data.root())
    print("\nOn general text, against findings labelled by hand (bench/names_general.py):\n")
    print("\n".join(names_general.table(general)))
    precision = names_general.SetResult.precision(names_general.totals(general))
    held_out = dict(rows)["tuneloop PersonDetector | held-out"]
    goal = TARGETS["person"]
    checks = {
        f"general-text PERSON precision ≥ {TARGETS['person_general']} "
        f"(got {precision:.3f})": precision >= TARGETS["person_general"],
        f"held-out PERSON precision ≥ {goal} (got {held_out.precision('PERSON'):.3f})": (
            held_out.precision("PERSON") >= goal
        ),
        f"held-out PERSON recall ≥ {goal} (got {held_out.recall('PERSON'):.3f})": (
            held_out.recall("PERSON") >= goal
        ),
    }
    for name, flag in checks.items():
        print(f"- {name}: {_ok(flag)}")
    return all(checks.values())


def stores_table() -> bool:
    rows = store_bench.measure()
    print(
        f"\n## The stores on SQLite and PostgreSQL ({store_bench.N_EVAL:,} eval items, "
        f"{store_bench.N_TRAIN:,} training records, {store_bench.N_SERVE:,} responses)\n"
    )
    print("\n".join(store_bench.table(rows)))
    return True  # a comparison, no target


# The privacy benchmarks train SmolLM2 several times each; they print their own tables.
PRIVACY_RUNS = (
    ("Differentially private training (SmolLM2, Alpaca, one user per record)",
     ["bench.dp_bench"]),
    ("Federated vs centralized LoRA (SmolLM2, Alpaca split among three sites)",
     ["bench.federated_bench", "--rounds", "2", "--local-steps", "2", "--records", "120",
      "--val", "32"]),
)  # fmt: skip


def privacy_tables() -> bool:
    ok = True
    for title, module in PRIVACY_RUNS:
        print(f"\n## {title}\n", flush=True)
        done = subprocess.run([sys.executable, "-m", *module], check=False)
        ok = ok and done.returncode == 0
    return ok


def latency_table() -> bool:
    src = dedup_bench.OUT / "dedup-100k.jsonl"
    r = latency_bench.run(src)
    print(f"\n## Ingest-time contamination check: one record vs {r['eval_items']:,} eval items\n")
    print("| queries | flagged | p50 ms | p99 ms | max ms | index build s |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {r['queries']} | {r['flagged']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
          f"{r['max_ms']:.3f} | {r['index_build_seconds']} |")  # fmt: skip
    flag = r["p99_ms"] <= TARGETS["p99_ms"]
    print(f"- p99 ≤ {TARGETS['p99_ms']} ms: {_ok(flag)}")
    return flag


def stream_table() -> bool:
    r = stream_bench.run()
    print("\n## Streaming: dedup of 1,000,000 records\n")
    print("| records | input MB | removed | seconds | peak RSS MB |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {r['records_in']:,} | {r['input_mb']} | {r['duplicates']:,} | "
          f"{r['process_seconds']:.1f} | {r['peak_rss_mb']:.0f} |")  # fmt: skip
    flag = r["peak_rss_mb"] <= TARGETS["stream_mb"]
    print(f"- peak memory ≤ {TARGETS['stream_mb']:.0f} MB: {_ok(flag)}")
    return flag


def train_table() -> bool:
    rows = train_bench.run()
    ours, peer = rows
    print("\n## LoRA training, SmolLM2-135M-Instruct, 256 Alpaca records, same real tokens\n")
    print("| loop | seconds | real tokens | real tokens/s | final eval loss |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['tool']} | {r['seconds']:.1f} | {r['real_tokens']:,} | "
              f"{r['tokens_per_s']:.1f} | {r['eval_loss']:.4f} |")  # fmt: skip
    speedup = ours["tokens_per_s"] / peer["tokens_per_s"]
    gap = abs(ours["eval_loss"] - peer["eval_loss"]) / peer["eval_loss"]
    checks = {
        f"throughput ≥ {TARGETS['train_speedup']}× (got {speedup:.2f}×)": speedup
        >= TARGETS["train_speedup"],
        f"eval loss within 2% (got {gap:.1%})": gap <= TARGETS["train_loss_gap"],
    }
    for name, flag in checks.items():
        print(f"- {name}: {_ok(flag)}")
    return all(checks.values())


def eval_table() -> bool:
    rows = eval_bench.run()
    print(f"\n## The evaluator, SmolLM2-135M-Instruct, {eval_bench.N} items per set, greedy, "
          "32 new tokens, batches of 16\n")  # fmt: skip
    print("| items | generate, then loss (two passes) s | one shared pass s | speed-up "
          "| same answer | max relative loss gap |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    checks = {}
    for r in rows:
        speedup = r["two_pass_s"] / r["shared_s"]
        print(f"| {r['set']} | {r['two_pass_s']:.1f} | {r['shared_s']:.1f} | {speedup:.2f}× | "
              f"{r['same_answers']} / {r['items']} | {r['max_loss_gap']:.1e} |")  # fmt: skip
        checks[f"{r['set']}: speed-up ≥ {TARGETS['eval_speedup']}× (got {speedup:.2f}×)"] = (
            speedup >= TARGETS["eval_speedup"]
        )
        checks[f"{r['set']}: same answer for ≥ {TARGETS['eval_same']:.0%} of items"] = (
            r["same_answers"] >= TARGETS["eval_same"] * r["items"]
        )
        checks[f"{r['set']}: loss within {TARGETS['eval_loss_gap']:.0e} (relative)"] = (
            r["max_loss_gap"] <= TARGETS["eval_loss_gap"]
        )
    for name, flag in checks.items():
        print(f"- {name}: {_ok(flag)}")
    return all(checks.values())


def throughput_table() -> bool:
    rows = serve_bench.throughput()
    print(
        "\n## Serving throughput: SmolLM2-135M-Instruct, 64-token greedy answers to Alpaca "
        "instructions, clients arriving at random times\n"
    )
    print(
        "| server | clients | requests | failed | tokens/s | × one at a time | "
        "time to first token p50 / p99 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    floors = {"float32": rows[0]["result"].tokens_per_s, "bfloat16": rows[1]["result"].tokens_per_s}
    at_8: dict[str, float] = {}
    router = float("inf")
    for row in rows:
        if "skipped" in row:
            print(f"| {row['server']} | – | – | – | – | – | skipped: {row['skipped'][:80]} |")
            continue
        if "router_p99_s" in row:
            router = row["router_p99_s"]
            continue
        r, dtype = row["result"], "bfloat16" if "bfloat16" in row["server"] else "float32"
        if row["server"].startswith("tuneloop serve, embedded") and r.clients == 8:
            at_8[dtype] = r.tokens_per_s / floors[dtype]
        print(
            f"| {row['server']} | {r.clients} | {r.requests} | {r.failed} | "
            f"{r.tokens_per_s:.1f} | {r.tokens_per_s / floors[dtype]:.2f}× | "
            f"{r.ttft_ms(50):.0f} / {r.ttft_ms(99):.0f} |"
        )
    print("\n(× one at a time: against plain generate in the same dtype.)")
    ceiling = serve_bench.step_ceiling()
    efficiency = at_8["float32"] / ceiling["ceiling"]
    print(
        f"\nThe ceiling batching allows, from this run's decode steps (float32, 120-token "
        f"context): 8 rows in {ceiling['eight_ms']:.0f} ms against 1 row in "
        f"{ceiling['one_ms']:.0f} ms, {ceiling['ceiling']:.2f}×; 8 clients reach "
        f"{at_8['float32']:.2f}×, {efficiency:.0%} of it (arriving prompts and answers that "
        "end early keep it below)."
    )
    target = TARGETS["serve_speedup"]
    checks = {
        f"8 clients within 90% of the ceiling, float32 (got {efficiency:.0%})":
            efficiency >= 0.9,
        f"8 clients ≥ {target}× one at a time, float32 (got {at_8['float32']:.2f}×)":
            at_8["float32"] >= target,
        f"8 clients ≥ {target}× one at a time, bfloat16 (got {at_8['bfloat16']:.2f}×)":
            at_8["bfloat16"] >= target,
        f"router overhead p99 ≤ 1 ms (≤ {router * 1000:.2f} ms)": router <= TARGETS["router_p99_s"],
    }  # fmt: skip
    for name, flag in checks.items():
        print(f"- {name}: {_ok(flag)}")
    return all(checks.values())


def fairness_table() -> bool:
    rows = fairness_bench.long_prompt_rows()
    print(
        "\n## A 6,000-token prompt arriving among four streams (SmolLM2, float32): the streams' "
        "gaps between tokens, the prompt's time to first token\n"
    )
    print("| prefill | streams' normal gap (median / max) ms | gap while it is read, p90 / max ms "
          "| × normal | its first token s | alone s | × alone |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['normal_gap_s'] * 1000:.0f} / {r['normal_max_s'] * 1000:.0f} | "
            f"{r['p90_gap_s'] * 1000:.0f} / {r['max_gap_s'] * 1000:.0f} | "
            f"{r['max_gap_s'] / r['normal_gap_s']:.1f}× | "
            f"{r['ttft_s']:.1f} | {r['lone_ttft_s']:.1f} | {r['ttft_s'] / r['lone_ttft_s']:.1f}× |"
        )
    retry = fairness_bench.retry_after_row()
    cost = fairness_bench.constrained_row()
    print(
        f"\nA full queue's 429 said Retry-After {retry['retry_after_s']} s; the queue drained in "
        f"{retry['drained_s']:.1f} s. Constrained decoding (llguidance, a 7-field ticket schema, "
        f"49,152-token vocabulary): compiled in {cost['compile_ms']:.1f} ms, "
        f"{cost['mask_ms_p50']:.3f} ms per token (median; {cost['mask_ms_max']:.2f} ms max)."
    )
    c = rows[0]
    gap, first = c["max_gap_s"] / c["normal_gap_s"], c["ttft_s"] / c["lone_ttft_s"]
    checks = {
        f"largest gap ≤ 2× the normal one (got {gap:.1f}×)": gap <= 2,
        f"first token ≤ 2× alone (got {first:.1f}×)": first <= 2,
        "Retry-After within a factor 2 of the real drain":
            0.5 <= retry["retry_after_s"] / max(retry["drained_s"], 1e-9) <= 2.0,
    }  # fmt: skip
    for name, flag in checks.items():
        print(f"- {name}: {_ok(flag)}")
    return all(checks.values())


def promotion_table() -> bool:
    switch = serve_bench.adapter_switch()
    p = serve_bench.promotion()
    print("\n## Promotion under load: 8 users streaming 64-token answers, production moved twice\n")
    print("| production moves to | router serves it after ms | first token from it after ms |")
    print("|---|---:|---:|")
    for key, label in (("newest", "the newest version (loaded ahead, hidden)"),
                       ("loaded", "a version loaded before (as a canary is)")):  # fmt: skip
        print(
            f"| {label} | {p[key]['switch_s'] * 1000:.0f} | {p[key]['first_token_s'] * 1000:.0f} |"
        )
    print(
        f"\n{p['requests']} requests during the moves, {p['failed']} failed; switching the "
        f"generation thread between two loaded adapters: {switch['median_ms']:.1f} ms median, "
        f"{switch['max_ms']:.1f} ms max"
    )
    worst = max(p["newest"]["first_token_s"], p["loaded"]["first_token_s"])
    checks = {
        f"new version answers ≤ 250 ms after the move (worst {worst * 1000:.0f} ms)":
            worst <= TARGETS["promote_s"],
        "no failed request": p["failed"] == 0,
        f"adapter switch ≤ 20 ms (max {switch['max_ms']:.1f} ms)":
            switch["max_ms"] <= TARGETS["switch_ms"],
        f"router overhead p99 ≤ 1 ms (≤ {p['router_p99_s'] * 1000:.2f} ms)":
            p["router_p99_s"] <= TARGETS["router_p99_s"],
    }  # fmt: skip
    for name, flag in checks.items():
        print(f"- {name}: {_ok(flag)}")
    return all(checks.values())


def canary_table() -> bool:
    rows = [serve_bench.canary("bad", 10.0, 8350), serve_bench.canary("good", 0.05, 8351)]
    print(
        "\n## Canaries judged on live traffic: 8 simulated users, interval 5 s, "
        "2 failing judgments to roll back, 20 requests and 10 thumbs per arm before judging\n"
    )
    print(
        "| candidate | outcome | seconds | weights | judgments | canary / production requests "
        "| reason |"
    )
    print("|---|---|---:|---|---:|---:|---|")
    for r in rows:
        label = {"bad": "answers garbage (users: thumbs-down)", "good": "answers like production"}
        print(
            f"| {label[r['kind']]} | {r['status']} | {r['seconds']:.1f} | "
            f"{' → '.join(f'{w:g}%' for w in r['weights'])} | {r['judgments']} | "
            f"{r['canary_requests']} / {r['production_requests']} | {r['reason']} |"
        )
    checks = {"the bad canary is rolled back by itself": rows[0]["status"] == "rolled_back",
              "the good canary is promoted": rows[1]["status"] == "promoted"}  # fmt: skip
    for name, flag in checks.items():
        print(f"- {name}: {_ok(flag)}")
    return all(checks.values())


def toxicity_table() -> bool:
    rows, gap = toxicity_bench.measure()
    print(
        "\n## The toxicity classifier (HateSonar's weights, NumPy port): RealToxicityPrompts' "
        "provocative prompts against Alpaca's answers\n"
    )
    print("\n".join(toxicity_bench.table(rows)))
    worst = min(r.auroc for r in rows[1:])
    checks = {
        f"port within 1e-5 of onnxruntime on {gap['texts']:.0f} texts "
        f"(got {gap['max_abs_diff']:.1e})": gap["max_abs_diff"] <= 1e-5,
        f"every attribute's AUROC ≥ {TARGETS['toxicity_auroc']} (lowest {worst:.3f})":
            worst >= TARGETS["toxicity_auroc"],
    }  # fmt: skip
    for name, flag in checks.items():
        print(f"- {name}: {_ok(flag)}")
    return all(checks.values())


def _chosen() -> list[str]:
    """The benchmarks this run will do, as named in bench.data.NEEDS."""
    only = os.environ.get("TUNELOOP_BENCH_ONLY")
    if only:
        return [only]
    optional = ("train", "eval", "serve", "privacy")
    skip = {k for k in optional if os.environ.get(f"TUNELOOP_BENCH_SKIP_{k.upper()}")}
    return ["dedup", "quality", "pii", "stores", "toxicity",
            *(k for k in optional if k not in skip)]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="tuneloop's benchmarks, as tables")
    parser.add_argument("--data", type=Path, help="the public data sets (default ../shared/data)")
    args = parser.parse_args(argv)
    if args.data:
        data.use(args.data)
    if problem := data.missing_message(_chosen()):
        print(problem, file=sys.stderr)
        return 2
    if os.environ.get("TUNELOOP_BENCH_ONLY") == "serve":
        return (
            0
            if all([throughput_table(), fairness_table(), promotion_table(), canary_table()])
            else 1
        )
    if os.environ.get("TUNELOOP_BENCH_ONLY") == "fairness":
        return 0 if fairness_table() else 1
    if os.environ.get("TUNELOOP_BENCH_ONLY") == "quality":
        return 0 if quality_table() else 1
    if os.environ.get("TUNELOOP_BENCH_ONLY") == "pii":
        return 0 if names_table() else 1
    if os.environ.get("TUNELOOP_BENCH_ONLY") == "stores":
        return 0 if stores_table() else 1
    if os.environ.get("TUNELOOP_BENCH_ONLY") == "privacy":
        return 0 if privacy_tables() else 1
    if os.environ.get("TUNELOOP_BENCH_ONLY") == "eval":
        return 0 if eval_table() else 1
    if os.environ.get("TUNELOOP_BENCH_ONLY") == "toxicity":
        return 0 if toxicity_table() else 1
    results = [dedup_table(), quality_table(), names_table(), latency_table(), stores_table()]
    results.append(toxicity_table())
    if not os.environ.get("TUNELOOP_BENCH_SKIP_TRAIN"):
        results.append(train_table())
    if not os.environ.get("TUNELOOP_BENCH_SKIP_EVAL"):
        results.append(eval_table())
    if not os.environ.get("TUNELOOP_BENCH_SKIP_SERVE"):
        results += [throughput_table(), fairness_table(), promotion_table(), canary_table()]
    if not os.environ.get("TUNELOOP_BENCH_SKIP_PRIVACY"):
        results.append(privacy_tables())
    if not os.environ.get("TUNELOOP_BENCH_SKIP_STREAM"):
        results.append(stream_table())
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
