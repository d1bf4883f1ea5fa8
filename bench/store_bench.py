"""The stores on both backends: the same operations on embedded SQLite and on PostgreSQL.

Real text (GSM8K train questions and answers) goes through each store's public API: the eval
store's chained appends, full read and chain verification; the training store's batched commit
and paged read; the serving log's appends and the canary judge's query. PostgreSQL runs on
this machine over a Unix socket (tests/postgres_server.sh), with fsync off as in the tests,
so the numbers compare the code paths, not disks.

    python -m bench.store_bench
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tuneloop.evalside.store import EvalStore
from tuneloop.records import Record, record_from_obj
from tuneloop.state.serving_log import ResponseRow, ServingLog
from tuneloop.storage import PgTarget, pg_target
from tuneloop.trainstore import TrainStore

from bench import data

N_EVAL, N_TRAIN, N_SERVE = 2000, 5000, 2000
PREFIX = "tuneloop_"
ROOT = Path(__file__).resolve().parents[1]


def _records(n: int) -> list[Record]:
    rows = []
    with (data.root() / "gsm8k" / "train.jsonl").open() as fh:
        for i, line in zip(range(n), fh, strict=False):
            item = json.loads(line)
            rows.append(record_from_obj({
                "id": f"g{i}", "user_id": f"u{i % 300}", "conversation_id": f"c{i % 900}",
                "created_at": "2026-11-20T10:00:00Z",
                "messages": [{"role": "user", "content": item["question"]},
                             {"role": "assistant", "content": item["answer"]}]}))  # fmt: skip
    return rows


def _timed(op: Callable[[], object]) -> float:
    start = time.perf_counter()
    op()
    return time.perf_counter() - start


def _eval_ops(target: Path | PgTarget, records: list[Record]) -> dict[str, float]:
    with EvalStore(target) as store:
        batches = [records[i : i + 100] for i in range(0, N_EVAL, 100)]
        append = _timed(lambda: [store.append([("gsm8k", r, None) for r in b]) for b in batches])
        read = _timed(lambda: sum(1 for _ in store.iter_items()))
        verify = _timed(store.verify)
    return {"eval append": append, "eval read all": read, "eval verify chain": verify}


def _train_ops(target: Path | PgTarget, records: list[Record]) -> dict[str, float]:
    with TrainStore(target) as store:
        batches = [records[i : i + 500] for i in range(0, N_TRAIN, 500)]
        commit = _timed(lambda: [store.commit(b, {}, f"b{k}") for k, b in enumerate(batches)])
        read = _timed(lambda: sum(1 for _ in store.iter_records()))
    return {"train commit": commit, "train read all": read}


def _serve_ops(target: Path | PgTarget, records: list[Record]) -> dict[str, float]:
    log = ServingLog(target)
    rows = [
        ResponseRow(
            response_id=f"r{i}", tenant="local", user_id=r.user_id, model_version="1",
            messages=[{"role": "user", "content": r.messages[0].content}],
            answer=r.messages[1].content, arm="canary" if i % 10 else "production",
            canary_id="k",
        )
        for i, r in enumerate(records)
    ]  # fmt: skip
    try:
        append = _timed(lambda: [log.append(rows[i : i + 50]) for i in range(0, N_SERVE, 50)])
        judge = _timed(lambda: log.canary_rows("k"))
    finally:
        log.close()
    return {"serving log append": append, "canary judge query": judge}


def _postgres_base() -> str:
    subprocess.run(["bash", str(ROOT / "tests" / "postgres_server.sh")], check=True)
    sys.path.insert(0, str(ROOT / "tests"))
    from support import pgserver

    return pgserver.fresh_database()


def measure() -> list[tuple[str, float, float]]:
    """(operation, SQLite seconds, PostgreSQL seconds) for the same operations on both."""
    records = _records(max(N_EVAL, N_TRAIN, N_SERVE))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sqlite = {
            **_eval_ops(folder / "eval.sqlite", records[:N_EVAL]),
            **_train_ops(folder / "train.sqlite", records[:N_TRAIN]),
            **_serve_ops(folder / "log.sqlite", records[:N_SERVE]),
        }
        base = _postgres_base()
        try:
            postgres = {
                **_eval_ops(pg_target(base, PREFIX, "eval", "eval", folder), records[:N_EVAL]),
                **_train_ops(pg_target(base, PREFIX, "train", "gateway", folder),
                             records[:N_TRAIN]),
                **_serve_ops(pg_target(base, PREFIX, "serving", "serve", folder),
                             records[:N_SERVE]),
            }  # fmt: skip
        finally:
            from support import pgserver

            pgserver.drop_database(base)
    return [(op, sqlite[op], postgres[op]) for op in sqlite]


def table(rows: list[tuple[str, float, float]]) -> list[str]:
    lines = ["| operation (GSM8K text) | SQLite s | PostgreSQL s | ratio |", "|---|---:|---:|---:|"]
    for op, lite, pg in rows:
        lines.append(f"| {op} | {lite:.3f} | {pg:.3f} | {pg / lite:.2f}× |")
    return lines


if __name__ == "__main__":
    print(f"eval store {N_EVAL:,} items, training store {N_TRAIN:,} records, "
          f"serving log {N_SERVE:,} responses\n")  # fmt: skip
    print("\n".join(table(measure())))
