"""Encryption at rest: ingest and curate throughput with and without it, on the same traffic.

Each arm is a fresh workspace fed the demo's generated support traffic (records with
conversations, planted PII, duplicates, junk) and its eval items. Names detection is off in
both arms so the table shows what encryption itself costs. Median of ``--repeat`` runs.

Usage: python -m bench.encryption_bench [--records 4000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tuneloop.demo.generate import generate, write
from tuneloop.flows.curate import curate
from tuneloop.flows.evalset import add_file
from tuneloop.flows.ingest import ingest_file
from tuneloop.workspace import init_workspace


def one_run(root: Path, files: dict[str, Path], encrypted: bool) -> tuple[float, float, int]:
    ws = init_workspace(root, "bench")
    ws = ws.configure({"curate.pii_names": False, "security.encryption": encrypted})
    add_file(ws, files["eval"], "task")
    t0 = time.perf_counter()
    ingested = ingest_file(ws, files["interactions"])
    t1 = time.perf_counter()
    curate(ws)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, ingested.records


def run(records: int = 4000, repeat: int = 3) -> list[str]:
    os.environ.setdefault("TUNELOOP_KEY", secrets.token_hex(32))
    with tempfile.TemporaryDirectory() as tmp:
        data = generate(0, max(20, records // 7), records, datetime(2026, 10, 1, tzinfo=UTC), 42)
        files = write(data, Path(tmp) / "data")
        results: dict[bool, list[tuple[float, float, int]]] = {False: [], True: []}
        for i in range(repeat):
            for encrypted in (False, True):
                results[encrypted].append(
                    one_run(Path(tmp) / f"ws-{i}-{encrypted}", files, encrypted)
                )
    lines = [
        f"{records} generated interactions, median of {repeat} runs, names detection off",
        "",
        "| encryption | ingest s | ingest records/s | curate s | curate records/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for encrypted in (False, True):
        rows = results[encrypted]
        ingest = statistics.median(r[0] for r in rows)
        curate_s = statistics.median(r[1] for r in rows)
        n = rows[0][2]
        label = "on (SQLCipher + AES-GCM)" if encrypted else "off"
        lines.append(
            f"| {label} | {ingest:.2f} | {n / ingest:,.0f} | {curate_s:.2f} | {n / curate_s:,.0f} |"
        )
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("\n".join(run(args.records, args.repeat)))
