"""``tuneloop forget``: no byte of the user's text left anywhere, the chain still verifies,
lineage names exactly the affected models, and the next cycle retrains or rolls back."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tuneloop.cycle.run import run_cycle
from tuneloop.datasets import DatasetStore
from tuneloop.flows.evalset import add_file
from tuneloop.flows.register import registry_for
from tuneloop.state.serving_log import FeedbackRow, ResponseRow, ServingLog
from tuneloop.workspace import Workspace

from support.clirun import run
from support.data import chats, write_jsonl
from support.workspaces import loop_ws

SECRET = "ZEBRA4711 meridian passphrase"  # planted in everything the user wrote
EVAL_SECRET = "QUOKKA9090 lantern codeword"
SHARED = "what are your opening hours on sunday"  # sent by the user and by someone else


def users_records(user: str, secret: str, n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        ask = f"please reset my password {i}, my note says {secret} number {i}"
        rows.append(
            {
                "id": f"{user}-{i}",
                "user_id": user,
                "conversation_id": f"{user}-c{i % 2}",
                "messages": [
                    {"role": "user", "content": ask},
                    {"role": "assistant", "content": f"Done {i}. ({secret})"},
                ],
            }
        )
    rows.append({"id": f"{user}-junk", "user_id": user, "text": f"{secret} !!!! ???? ####"})
    return rows  # fmt: skip


def serve_log(ws: Workspace, user: str) -> None:
    log = ServingLog(ws.serving_log_path)
    messages = [{"role": "user", "content": f"what about {SECRET}?"}]
    log.append([
        ResponseRow("resp-1", "local", messages, "production", "1", answer=f"{SECRET} it is",
                    user_id=user, conversation_id=f"{user}-live", created_unix=0.0),
        ResponseRow("resp-2", "local", [{"role": "user", "content": "hello there"}],
                    "production", "1", answer="hi", user_id="someone-else", created_unix=0.0),
        FeedbackRow("fb-1", "resp-1", "local", thumbs="down", correction=f"say {SECRET} again"),
        *(ResponseRow(f"resp-{who}-hours", "local", [{"role": "user", "content": SHARED}],
                      "production", "1", answer="nine to five", user_id=who, created_unix=0.0)
          for who in (user, "someone-else")),
    ])  # fmt: skip
    log.close()


def scenario(tmp_path: Path, base: Path, policy: str) -> Workspace:
    """A user trained into v1 (records, a dropped junk record, serving log) and an eval-side
    user; other users' data around them."""
    ws = loop_ws(tmp_path / "ws", base, chats("a", 24) + users_records("zed", SECRET, 6))
    ws = ws.configure({"gateway.eval_fraction": 0.0, "cycle.on_tainted": policy,
                       "cycle.serving_log": False})  # fmt: skip
    item = {"id": "e-quokka", "user_id": "quinn", "prompt": f"my code is {EVAL_SECRET}, ok?",
            "completion": "ok", "created_at": "2026-10-05T12:00:00Z"}  # fmt: skip
    add_file(ws, write_jsonl(tmp_path / "more-eval.jsonl", [item]), "task")
    (tmp_path / "more-eval.jsonl").unlink()
    assert run_cycle(ws)["end"]["outcome"] == "promoted"
    serve_log(ws, "zed")
    return ws


def files_holding(root: Path, text: str) -> list[str]:
    """grep, in its own process: reading a SQLite file this process has open would drop the
    process's locks on it (POSIX record locks go with any close of the file)."""
    done = subprocess.run(["grep", "-rlaF", text, str(root)], capture_output=True, text=True)
    return sorted(done.stdout.split())


@pytest.mark.parametrize("policy", ["retrain", "rollback"])
def test_forget_removes_every_byte_and_taints_exactly_the_affected_models(
    tmp_path: Path, tiny_base: Path, policy: str
) -> None:
    ws = scenario(tmp_path, tiny_base, policy)
    assert files_holding(ws.root, SECRET) and files_holding(ws.root, EVAL_SECRET)  # planted

    done = run("forget", "--user", "zed", "-w", ws.root, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    receipt = json.loads(done.stdout)
    assert receipt["found"]["training_records"] == 7  # the junk one too (curation dropped it)
    assert receipt["tainted_models"] == ["1"] and receipt["production_tainted"]
    assert receipt["removed"]["serving_log"] == {"responses": 2, "feedback": 1}
    assert receipt["removed"]["jsonl_files"]  # the rejected junk line and the collected inbox
    assert receipt["check"]["clean"], receipt["check"]
    assert files_holding(ws.root, SECRET) == []
    assert receipt["check"]["texts_others_hold_too"] == 2  # the question and its answer
    assert files_holding(ws.root, SHARED)  # kept: someone else asked it too
    assert (ws.root / "erasures" / f"{receipt['request_id']}.json").is_file()

    eval_done = run("forget", "--user", "quinn", "-w", ws.root, "--json", cwd=tmp_path)
    eval_receipt = json.loads(eval_done.stdout)
    assert eval_receipt["found"]["eval_items"] == 1 and eval_receipt["tainted_models"] == []
    assert files_holding(ws.root, EVAL_SECRET) == []
    verified = run("evalset", "verify", "-w", ws.root, cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    datasets = DatasetStore(ws.datasets_dir)
    assert all(datasets.verify(v) == [] for v in datasets.versions())
    assert not any(i.startswith("zed-") for v in datasets.versions() for i in datasets.ids(v))
    registry = registry_for(ws)
    assert registry.get("1").tainted is not None
    assert any(e["action"] == "tainted" for e in registry.audit())
    with sqlite3.connect(ws.serving_log_path) as db:
        kept = db.execute("SELECT answer FROM responses WHERE response_id = 'resp-2'").fetchone()
    assert kept == ("hi",)  # another user's response is untouched

    status = run_cycle(ws)
    if policy == "retrain":
        assert status["end"]["outcome"] == "promoted", status
        v2 = registry.get("2")
        assert v2.tainted is None and registry.aliases()["production"] == "2"
        seed = v2.lineage.hyperparameters["init_from"]
        assert seed["version"] is None and "tainted" in seed["note"]  # not grown from v1
        assert not any(i.startswith("zed-") for i in datasets.ids(v2.lineage.dataset_version))
    else:
        assert "production" not in registry.aliases()  # no untainted version: the base serves
        assert status["end"]["outcome"] == "stopped"  # and nothing new to train on


def test_forget_needs_a_subject(workspace: Workspace, tmp_path: Path) -> None:
    done = run("forget", "-w", workspace.root, cwd=tmp_path)
    assert done.returncode == 2 and "--user" in done.stderr


def test_the_eval_store_allows_no_update_but_a_recorded_erasure(tmp_path: Path) -> None:
    from tuneloop.evalside.store import EvalStore
    from tuneloop.records import record_from_obj

    with EvalStore(tmp_path / "e.sqlite") as store:
        store.append([("qa", record_from_obj({"id": "e1", "text": "secret one"}), None),
                      ("qa", record_from_obj({"id": "e2", "text": "kept two"}), None)])  # fmt: skip
        raw = sqlite3.connect(store.path, isolation_level=None)
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):  # not recorded first
            raw.execute("UPDATE items SET record_json = NULL, salt = NULL WHERE item_id = 'e1'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):  # more than the text
            raw.execute("UPDATE items SET suite = 'x', record_json = NULL, salt = NULL")
        head = store.head()
        assert store.erase(["e1"], "req-1") == 1 and store.erase(["e1"], "req-2") == 0
        assert store.head() == head and store.version() != head
        assert [i.item_id for i in store.iter_items()] == ["e2"] and store.verify().ok
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):  # no way back
            raw.execute("UPDATE items SET record_json = '{}' WHERE item_id = 'e1'")
    assert b"secret one" not in (tmp_path / "e.sqlite").read_bytes()


def test_the_byte_check_finds_the_same_with_and_without_grep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuneloop import erasure

    (tmp_path / "a:b").mkdir()  # a colon in a path: grep's output is NUL-separated
    (tmp_path / "a:b" / "x.bin").write_bytes(b"\x00\xff" + SECRET.encode() + b"\x00" * 9)
    (tmp_path / "y.json").write_bytes(json.dumps({"t": f"line\n{SHARED}\n"}).encode())
    (tmp_path / "clean.txt").write_text("nothing here")
    wanted = erasure.needles([SECRET, f"{SHARED}\nnot kept anywhere at all"])
    with_grep = erasure.find_bytes(tmp_path, wanted)
    monkeypatch.setattr(erasure.shutil, "which", lambda _: None)
    assert with_grep == erasure.find_bytes(tmp_path, wanted) == {"a:b/x.bin": 1, "y.json": 1}
