"""``make bench``: every benchmark, printed as tables with the peer library side by side.

Set TUNELOOP_BENCH_SKIP_STREAM=1 to skip the 1M-record streaming run (it writes ~1 GB).
"""

from __future__ import annotations

import os
import sys

from bench import dedup_bench, latency_bench, stream_bench

TARGETS = {"speedup": 15.0, "recall": 0.97, "peak_mb": 1024.0, "p99_ms": 1.0, "stream_mb": 2048.0}


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


def main() -> int:
    results = [dedup_table(), latency_table()]
    if not os.environ.get("TUNELOOP_BENCH_SKIP_STREAM"):
        results.append(stream_table())
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
