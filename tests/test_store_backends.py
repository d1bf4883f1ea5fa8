"""The three stores that hold user text, on both backends: embedded SQLite and PostgreSQL.

The same store tests run against each (``where`` is parametrized); the server's role tests,
which SQLite has no equivalent of, follow: every stage connects as its own role, and the
grants refuse what the code promises never to do.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tuneloop.cycle.triggers import check_quality, check_tainted
from tuneloop.errors import EvalStoreError, StorageError, WorkspaceError
from tuneloop.evalside.store import EvalStore
from tuneloop.flows.curate import curate
from tuneloop.flows.evalset import add_file
from tuneloop.flows.forget import forget
from tuneloop.flows.ingest import ingest_file
from tuneloop.flows.serving import ingest_serving_log
from tuneloop.gateway import group_side
from tuneloop.records import record_from_obj
from tuneloop.registry import Lineage, Registry, release
from tuneloop.registry.release import ReleaseRefusedError
from tuneloop.report.collect import collect as collect_report
from tuneloop.state.serving_log import FeedbackRow, ResponseRow, ServingLog
from tuneloop.storage import PgTarget, Role, Store, pg_target
from tuneloop.trainstore import LateFeedback, TrainStore
from tuneloop.workspace import Workspace, init_workspace

from support.clirun import run as tuneloop_cli
from support.pgserver import PGTEST_DIR, PREFIX, admin_conninfo
from support.workspaces import make_workspace

Where = Callable[[Store, Role], Path | PgTarget]


@pytest.fixture(params=["sqlite", "postgres"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    """Where each store is, as each role would open it, on one backend."""
    if request.param == "sqlite":
        return lambda store, role: tmp_path / f"{store}.sqlite"
    base = request.getfixturevalue("pg_database")
    return lambda store, role: pg_target(base, PREFIX, store, role, tmp_path / f"{store}.sqlite")


def rec(i: int, user: str = "u1", text: str | None = None) -> Any:
    return record_from_obj(
        {"id": f"r{i}", "user_id": user, "conversation_id": f"c-{user}",
         "created_at": "2026-11-20T10:00:00Z", "text": text or f"record number {i} of {user}"}
    )  # fmt: skip


def raw_sql(target: Path | PgTarget, statement: str) -> None:
    """One statement on the store's own connection, bypassing the API."""
    if isinstance(target, Path):
        conn = sqlite3.connect(target, isolation_level=None)
        try:
            conn.execute(statement)
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(
        target.conninfo, autocommit=True, options=f"-c search_path={target.schema}"
    ) as pg:
        pg.execute(statement.encode())


# -- the eval store ----------------------------------------------------------------------------


def test_eval_store_round_trip_chain_and_verify(where: Where) -> None:
    with EvalStore(where("eval", "eval")) as store:
        heads = [store.head()]
        store.append([("task", rec(i), None) for i in range(3)])
        heads.append(store.head())
        store.append([("safety", rec(9, "u2"), "2026-W01")])
        heads.append(store.head())
        items = list(store.iter_items())
        assert [i.item_id for i in items] == ["r0", "r1", "r2", "r9"]
        assert [i.window for i in items] == ["2026-W47"] * 3 + ["2026-W01"]
        assert items[1].record.text == "record number 1 of u1"
        assert len(set(heads)) == 3 and store.suites() == {"safety": 1, "task": 3}
        assert store.verify(known_head=heads[1]).ok and store.verify().rows == 4
        assert [i.item_id for i in store.items_since(3)] == ["r9"]


def test_eval_store_refuses_duplicates_edits_and_deletes_and_logs_them(where: Where) -> None:
    with EvalStore(where("eval", "eval")) as store:
        store.append([("task", rec(1), None)])
        with pytest.raises(EvalStoreError, match="nothing was written"):
            store.append([("task", rec(2), None), ("task", rec(1), None)])
        with pytest.raises(EvalStoreError, match="append-only"):
            store.update("r1")
        with pytest.raises(EvalStoreError, match="append-only"):
            store.delete("r1")
        assert [w.operation for w in store.audit()] == ["append", "update", "delete"]
        assert store.count() == 1 and store.verify().ok


@pytest.mark.parametrize(
    "statement",
    ["UPDATE items SET suite = 'other'", "DELETE FROM items",
     "UPDATE items SET record_json = NULL, salt = NULL"],  # an erasure without its record
)  # fmt: skip
def test_raw_edits_of_eval_items_are_refused_by_the_database(where: Where, statement: str) -> None:
    target = where("eval", "eval")
    with EvalStore(target) as store:
        store.append([("task", rec(1), None)])
    raw_target = target if isinstance(target, Path) else _as_role(target, "erasure")
    with pytest.raises(Exception, match=r"append-only|permission denied"):  # trigger or grant
        raw_sql(raw_target, statement)
    with EvalStore(target) as store:
        assert store.verify().ok and store.count() == 1


def test_erasure_clears_text_and_keeps_the_chain(where: Where) -> None:
    with EvalStore(where("eval", "eval")) as store:
        store.append([("task", rec(i, u), None) for i, u in ((1, "ann"), (2, "bob"), (3, "ann"))])
        before = store.version()
        found = sorted(store.find(user_id="ann"))
    assert found == ["r1", "r3"]
    with EvalStore(where("eval", "erasure")) as store:
        assert store.erase(found, "req-1") == 2
    with EvalStore(where("eval", "eval")) as store:
        assert [i.item_id for i in store.iter_items()] == ["r2"]
        assert store.verify().ok and store.version() != before
        assert [e[0] for e in store.erased()] == ["r1", "r3"]


def _append_many(target: Path | PgTarget, worker: int) -> None:
    with EvalStore(target) as store:
        for i in range(15):
            store.append([("task", rec(worker * 100 + i, f"w{worker}"), None)])


def test_concurrent_appends_from_processes_do_not_fork_the_chain(where: Where) -> None:
    target = where("eval", "eval")
    EvalStore(target).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(target, w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    with EvalStore(target) as store:
        result = store.verify()
    assert result.ok and result.rows == 45


# -- the training store ------------------------------------------------------------------------


def test_train_store_commit_read_feedback_cursor_and_erase(where: Where) -> None:
    with TrainStore(where("train", "gateway")) as store:
        added = store.commit([rec(i) for i in range(3)] + [rec(7, "u2")],
                             {"user:u1": "train", "user:u2": "train"}, "batch-1",
                             cursors={"serving_log": 42})  # fmt: skip
        store.commit([], {"user:u1": "eval"}, "batch-2",
                     feedback=[LateFeedback("r1", "fb-1", thumbs="down", rating=1.5),
                               LateFeedback("r1", "fb-1", thumbs="up")])  # fmt: skip
        assert added == 4 and store.count() == 4 and store.cursor("serving_log") == 42
        assert store.known_sides() == {"user:u1": "train", "user:u2": "train"}  # sticky
        assert store.existing_ids(["r1", "r7", "nope"]) == {"r1", "r7"}
        got = {r.id: r for r in store.iter_records()}
        assert (got["r1"].thumbs, got["r1"].rating) == ("down", 1.5)  # fb-1 once: idempotent
        assert [r.id for r in store.newest(2)] == ["r2", "r7"]
        assert [r.id for r in store.subject_records("u1", None)] == ["r0", "r1", "r2"]
    with TrainStore(where("train", "erasure")) as store:
        removed = store.erase(["r0", "r1", "r2"], ["user:u1"])
        assert removed == {"records": 3, "feedback": 1, "routes": 1}
        assert [r.id for r in store.iter_records()] == ["r7"]


# -- the serving log ---------------------------------------------------------------------------


def response(i: int, user: str, arm: str = "production") -> ResponseRow:
    return ResponseRow(
        response_id=f"resp-{i}", tenant="local", user_id=user, conversation_id=f"c-{user}",
        messages=[{"role": "user", "content": f"question {i} from {user}"}],
        answer=f"answer {i}", arm=arm, model_version="3", canary_id="k1", latency_s=0.25,
    )  # fmt: skip


def test_serving_log_append_read_feedback_and_erase(where: Where) -> None:
    log = ServingLog(where("serving", "serve"))
    try:
        log.append([response(1, "ann"), response(2, "bob", "canary"), response(1, "ann")])
        log.append([FeedbackRow("f1", "resp-1", "local", thumbs="down", comment="wrong"),
                    FeedbackRow("f2", "resp-2", "local", rating=4.0)])  # fmt: skip
        assert [r["response_id"] for r in log.responses_after(0, 1e12)] == ["resp-1", "resp-2"]
        rows = {r["arm"]: r for r in log.canary_rows("k1")}
        assert (rows["production"]["thumbs"], rows["canary"]["rating"]) == ("down", 4.0)
        assert log.pending(0, 1e12, 0) == (2, 2)
        assert sorted(log.texts_of(["ann"], [])) == ["answer 1", "question 1 from ann", "wrong"]
    finally:
        log.close()
    eraser = ServingLog(where("serving", "erasure"))
    try:
        assert eraser.erase(["ann"], []) == {"responses": 1, "feedback": 1}
        assert eraser.texts_of(["ann"], []) == [] and "answer 2" in eraser.texts_except([], [])
        assert eraser.response("resp-1")["latency_s"] == 0.25  # what the canary judge counts
    finally:
        eraser.close()
    with pytest.raises(Exception, match="append-only"):
        raw_sql(where("serving", "erasure"), "UPDATE responses SET arm = 'canary'")


# -- PostgreSQL: the roles ---------------------------------------------------------------------


def _as_role(target: PgTarget, role: str) -> PgTarget:
    return PgTarget(target.conninfo.replace(target.role, f"{PREFIX}{role}"), target.schema,
                    f"{PREFIX}{role}", target.local)  # fmt: skip


# (role, statement, allowed): what each stage may do, as the database enforces it.
ROLE_TABLE = [
    ("train", "SELECT record_json FROM evalstore.items", False),
    ("train", "SELECT salt FROM evalstore.items", False),
    ("train", "SELECT seq, row_hash, content_hash FROM evalstore.items", True),
    ("train", "SELECT record_json FROM train.records", True),
    ("train", "INSERT INTO evalstore.items(seq, item_id, suite, content_hash, created_at, "
              "prev_hash, row_hash) VALUES (99, 'x', 's', 'h', 't', 'p', 'r')", False),
    ("train", "DELETE FROM train.records", False),
    ("gateway", "SELECT record_json FROM evalstore.items", False),
    ("gateway", "INSERT INTO train.routes VALUES ('user:z', 'train', 't')", True),
    ("gateway", "SELECT messages_json FROM serving.responses", True),
    ("serve", "SELECT record_json FROM train.records", False),
    ("serve", "SELECT record_json FROM evalstore.items", False),
    ("serve", "INSERT INTO serving.feedback(feedback_id, response_id, received_at, tenant) "
              "VALUES ('f', 'r', 't', 'local')", True),
    ("eval", "SELECT record_json, salt FROM evalstore.items", True),
    ("eval", "INSERT INTO train.records(id, ingested_at, batch, record_json) "
             "VALUES ('x', 't', 'b', '{}')", False),
    ("eval", "UPDATE evalstore.items SET suite = 'x'", False),
    ("eval", "DELETE FROM evalstore.items", False),
    ("eval", "TRUNCATE evalstore.items", False),
    ("erasure", "TRUNCATE serving.responses", False),
    ("erasure", "DELETE FROM evalstore.erasures", False),
]  # fmt: skip


@pytest.mark.parametrize(("role", "statement", "allowed"), ROLE_TABLE)
def test_each_role_may_do_exactly_what_its_stage_needs(
    pg_database: str, tmp_path: Path, role: str, statement: str, allowed: bool
) -> None:
    with EvalStore(pg_target(pg_database, PREFIX, "eval", "eval", tmp_path / "e")) as store:
        store.append([("task", rec(1), None)])
    target = pg_target(pg_database, PREFIX, "train", role, tmp_path / "t")  # type: ignore[arg-type]
    if allowed:
        raw_sql(target, statement)
        return
    import psycopg

    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        raw_sql(target, statement)


def test_the_owner_cannot_edit_eval_items_either_and_the_server_logs_refusals(
    pg_database: str, tmp_path: Path
) -> None:
    import psycopg

    with EvalStore(pg_target(pg_database, PREFIX, "eval", "eval", tmp_path / "e")) as store:
        store.append([("task", rec(1), None)])
    superuser = admin_conninfo(pg_database.split("dbname=")[1].split()[0])
    marker = f"refusal-{tmp_path.name}"
    for statement in ("UPDATE evalstore.items SET suite = 'x'", "DELETE FROM evalstore.items",
                      "TRUNCATE evalstore.items"):  # fmt: skip
        with (
            psycopg.connect(superuser, autocommit=True, application_name=marker) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"),
        ):
            conn.execute(statement)
    logged = (PGTEST_DIR / "server.log").read_text(errors="replace")
    for op in ("UPDATE", "DELETE", "TRUNCATE"):
        assert f"eval store is append-only: {op} on evalstore.items refused (by postgres)" in logged


def test_the_training_side_reads_eval_hashes_but_not_eval_text(
    pg_database: str, tmp_path: Path
) -> None:
    with EvalStore(pg_target(pg_database, PREFIX, "eval", "eval", tmp_path / "e")) as store:
        store.append([("task", rec(1, text="the secret eval question"), None)])
        head, version = store.head(), store.version()
    with EvalStore(pg_target(pg_database, PREFIX, "eval", "train", tmp_path / "e")) as store:
        assert (store.head(), store.version()) == (head, version)  # what the index is keyed by
        with pytest.raises(StorageError, match=r"tuneloop_train.*permission denied"):
            list(store.iter_items())


# -- a workspace on PostgreSQL -----------------------------------------------------------------


def _on_postgres(root: Path, base: str) -> Workspace:
    settings = {
        "storage.backend": "postgres",
        "storage.postgres": base,
        "gateway.eval_fraction": 0.5,  # the gateway writes both stores
    }
    return make_workspace(root, settings)


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _question(i: int) -> str:
    rng = random.Random(i)
    return f"Question {i}: " + " ".join(f"w{rng.randrange(5000)}" for _ in range(30))


def test_a_workspace_on_postgres_ingests_curates_registers_and_forgets(
    pg_database: str, tmp_path: Path
) -> None:
    ws = _on_postgres(tmp_path / "ws", pg_database)
    dbname = pg_database.split("dbname=")[1].split()[0]
    done = tuneloop_cli("db", "init", "--admin", admin_conninfo(dbname), cwd=ws.root)
    assert done.returncode == 0, done.stderr
    evals = [{"id": f"e{i}", "text": _question(1000 + i)} for i in range(5)]
    assert add_file(ws, _jsonl(tmp_path / "eval.jsonl", evals), "task").accepted
    rows = [{"id": f"t{i}", "user_id": f"u{i}", "messages": [
        {"role": "user", "content": _question(i)},
        {"role": "assistant", "content": "Happy to help with that today."}]}
        for i in range(30)]  # fmt: skip
    leaker = next(u for u in (f"x{i}" for i in range(99))
                  if group_side(ws.config.gateway, f"user:{u}") == "train")  # fmt: skip
    rows.append({"id": "leak", "user_id": leaker, "text": evals[2]["text"]})
    report = ingest_file(ws, _jsonl(tmp_path / "in.jsonl", rows))
    assert report.contamination == {"exact": 1}
    assert report.stored_train + report.stored_eval == 30 and report.stored_eval > 0
    with TrainStore(ws.store("train", "train")) as store:
        assert store.existing_ids(["leak", "t0", "t1"]) <= {"t0", "t1"} and store.count() > 0
    built = curate(ws)
    assert built.records_out > 0 and built.certificate
    assert not ws.train_store_path.exists() and not ws.eval_store_path.exists()  # all on the server
    registry = Registry.for_workspace(ws.root)
    assert registry.tracking_uri.startswith("postgresql+psycopg://tuneloop_registry@")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 8}')
    (adapter / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    lineage = Lineage("base", "rev", "b" * 64, built.version, "", {}, "c")
    version = registry.register(adapter, lineage).version
    registry.promote(version)
    assert Registry.for_workspace(ws.root).resolve("production").version == version
    sides = {f"u{i}": group_side(ws.config.gateway, f"user:u{i}") for i in range(30)}
    trained, held = (min(u for u, s in sides.items() if s == side) for side in ("train", "eval"))
    receipt = forget(ws, user=trained)
    assert receipt["check"]["clean"] and receipt["found"]["training_records"] == 1
    assert receipt["tainted_models"] == [version] and receipt["production_tainted"]
    assert not ws.registry_db_path.exists()  # the registry is on the server too, and read so:
    assert check_tainted(ws).fired  # the erasure trigger sees the tainted production
    listed = collect_report(ws)
    assert [v["version"] for v in listed.versions] == [version]
    assert any("erased" in p for p in listed.versions[0]["problems"])
    with pytest.raises(ReleaseRefusedError, match="has not been through the gate"):
        release.promote(registry, version, ws.index_version())
    receipt = forget(ws, user=held)
    assert receipt["check"]["clean"] and receipt["found"]["eval_items"] == 1
    with TrainStore(ws.store("train", "train")) as store:
        assert store.count() == report.stored_train - 1
    verified = tuneloop_cli("evalset", "verify", cwd=ws.root)
    assert verified.returncode == 0, verified.stderr
    with EvalStore(ws.store("eval", "eval")) as estore:
        assert len(estore.erased()) == 1 and estore.count() == len(evals) + report.stored_eval - 1


def test_what_exists_is_asked_of_the_workspace_not_of_the_disk(
    pg_database: str, tmp_path: Path
) -> None:
    """On a server no store file ever appears, and a store is there from `tuneloop db init` on."""
    local = init_workspace(tmp_path / "local")
    assert not local.has_registry() and not local.has_serving_log()
    assert local.registry_uri() == f"sqlite:///{local.registry_db_path}"
    with pytest.raises(WorkspaceError, match="no serving log yet"):
        ingest_serving_log(local)
    ws = _on_postgres(tmp_path / "ws", pg_database)
    assert ws.has_registry() and ws.has_serving_log() and ws.index_version() is None
    assert ws.registry_uri().startswith("postgresql+psycopg://tuneloop_registry@")
    assert ingest_serving_log(ws).responses_read == 0  # the server's log, empty: no refusal
    assert "no serving log" not in check_quality(ws, ws.config.cycle.triggers, 0.0).detail
    assert not ws.serving_log_path.exists() and not ws.registry_db_path.exists()
    refused = tuneloop_cli("registry", "relocate", cwd=ws.root)
    assert refused.returncode == 2 and "a registry on a server is shared" in refused.stderr


def test_db_init_on_a_sqlite_workspace_says_what_to_set(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    done = tuneloop_cli("db", "init", "--admin", "dbname=postgres", cwd=ws.root)
    assert done.returncode == 2 and "backend = 'postgres'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_only_the_evaluator_rebuilds_a_stale_index_on_postgres(
    pg_database: str, tmp_path: Path
) -> None:
    ws = _on_postgres(tmp_path / "ws", pg_database)
    evals = [{"id": f"e{i}", "text": _question(2000 + i)} for i in range(3)]
    add_file(ws, _jsonl(tmp_path / "eval.jsonl", evals), "task")
    rows = [{"id": f"t{i}", "user_id": f"u{i}", "text": _question(i)} for i in range(6)]
    ingest_file(ws, _jsonl(tmp_path / "in.jsonl", rows))
    shutil.rmtree(ws.index_dir)  # lost: the training side cannot rebuild it from hashes
    with pytest.raises(StorageError, match=r"tuneloop_train.*only the evaluator may rebuild"):
        curate(ws)
    listed = tuneloop_cli("evalset", "list", cwd=ws.root)
    assert listed.returncode == 0, listed.stderr
    assert curate(ws).records_in > 0
