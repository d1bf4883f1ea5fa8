"""``make bench``: every benchmark, printed as tables with the peer library side by side.

Set TUNELOOP_BENCH_SKIP_STREAM=1 to skip the 1M-record streaming run (it writes ~1 GB), and
TUNELOOP_BENCH_SKIP_TRAIN=1 to skip the training comparison (it fetches SmolLM2 once).
"""

from __future__ import annotations

import os
import sys

from bench import dedup_bench, latency_bench, stream_bench, train_bench

TARGETS = {
    "speedup": 15.0,
    "recall": 0.97,
    "peak_mb": 1024.0,
    "p99_ms": 1.0,
    "stream_mb": 2048.0,
    "train_speedup": 1.3,
    "train_loss_gap": 0.02,
}


def _ok(flag: bool) -> str:
    return "yes" if flag else "NO"


def dedup_table() -> bool:
    rows = dedup_bench.run()
    ours, peer = rows[0], rows[1]
    speedup = peer["process_seconds"] / ours["process_seconds"]
    print("\n## Near-duplicate removal, 100,000 real documents (threshold 0.8, 128 permutations)\n")
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


def main() -> int:
    results = [dedup_table(), latency_table()]
    if not os.environ.get("TUNELOOP_BENCH_SKIP_TRAIN"):
        results.append(train_table())
    if not os.environ.get("TUNELOOP_BENCH_SKIP_STREAM"):
        results.append(stream_table())
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
