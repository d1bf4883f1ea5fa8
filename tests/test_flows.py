"""End to end on a workspace: evalset add, ingest, curate, and what each one refuses."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from tuneloop.datasets import DatasetStore
from tuneloop.evalside.store import EvalStore
from tuneloop.flows.curate import curate
from tuneloop.flows.evalset import add_file
from tuneloop.flows.ingest import ingest_file
from tuneloop.gateway import group_side
from tuneloop.trainstore import TrainStore
from tuneloop.workspace import Workspace

RNG = random.Random(3)
VOCAB = [f"word{i}" for i in range(2000)]


def sentence(n: int = 40) -> str:
    return " ".join(RNG.choice(VOCAB) for _ in range(n))


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def chat(
    rid: str, user: str, question: str, answer: str = "Happy to help with that today."
) -> dict[str, Any]:
    return {
        "id": rid,
        "user_id": user,
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ],
    }


def with_fraction(ws: Workspace, fraction: float) -> Workspace:
    """The same workspace with another share of groups routed to the eval bucket."""
    return ws.configure({"gateway.eval_fraction": fraction})


def test_ingest_drops_eval_copies_with_their_match(workspace: Workspace, tmp_path: Path) -> None:
    workspace = with_fraction(workspace, 0.0)
    evals = [{"id": f"e{i}", "text": sentence()} for i in range(5)]
    add_file(workspace, write(tmp_path / "eval.jsonl", evals), "task")
    rows = [chat(f"t{i}", f"u{i}", sentence()) for i in range(20)]
    rows.append(chat("leak", "u99", evals[2]["text"]))
    report = ingest_file(workspace, write(tmp_path / "in.jsonl", rows))
    rejects = [json.loads(x) for x in Path(report.rejects_file or "").read_text().splitlines()]
    # the user turn is the eval text itself: found exactly, although the reply around it differs
    assert [(r["id"], r["eval_id"], r["method"]) for r in rejects] == [("leak", "e2", "exact")]
    assert report.contamination == {"exact": 1} and report.stored_train == 20
    with TrainStore(workspace.train_store_path) as store:
        assert "leak" not in {r.id for r in store.iter_records()}


def test_ingest_rejects_hold_no_raw_pii_but_keep_the_keys(
    workspace: Workspace, tmp_path: Path
) -> None:
    """A plain workspace's rejects file is read by people: the text is redacted the way curation
    redacts it, the record's id and its grouping keys (an email as user id) are not."""
    workspace = with_fraction(workspace, 0.0)
    evals = [{"id": "e1", "text": sentence()}]
    add_file(workspace, write(tmp_path / "eval.jsonl", evals), "task")
    leak = chat("leak", "ann@example.org", evals[0]["text"] + " Card 4111 1111 1111 1111, "
                "mail me at bob.smith@example.com or call +1 415 555 0134.")  # fmt: skip
    report = ingest_file(workspace, write(tmp_path / "in.jsonl", [leak, chat("ok", "u1", "hi")]))
    raw = Path(report.rejects_file or "").read_text()
    for secret in ("4111 1111 1111 1111", "bob.smith@example.com", "555 0134"):
        assert secret not in raw, secret
    (row,) = [json.loads(x) for x in raw.splitlines()]
    assert row["id"] == "leak" and row["record"]["user_id"] == "ann@example.org"
    assert row["reason"] == "contaminated" and "<" in row["record"]["messages"][0]["content"]


def test_every_record_is_accounted_for(workspace: Workspace, tmp_path: Path) -> None:
    rows = [chat(f"t{i}", f"u{i % 7}", sentence()) for i in range(40)]
    rows += [chat("dup", "u1", "x"), chat("dup", "u1", "y"), {"id": "blank", "text": "  "}]
    report = ingest_file(workspace, write(tmp_path / "in.jsonl", rows))
    dropped = sum(report.dropped.values())
    assert report.stored_train + report.stored_eval + dropped == len(rows)
    assert report.dropped["gateway:duplicate_id"] == 1 and report.dropped["gateway:empty"] == 1
    again = ingest_file(workspace, write(tmp_path / "again.jsonl", rows[:3]))
    assert again.dropped["gateway:duplicate_id"] == 3


def test_eval_items_found_in_training_are_refused(workspace: Workspace, tmp_path: Path) -> None:
    workspace = with_fraction(workspace, 0.0)
    text = sentence()
    ingest_file(workspace, write(tmp_path / "in.jsonl", [{"id": "t1", "text": text}]))
    items = [{"id": "e1", "text": text.upper()}, {"id": "e2", "text": sentence()}]
    report = add_file(workspace, write(tmp_path / "e.jsonl", items), "s")
    assert [(r["id"], r["training_id"], r["method"]) for r in report.refused] == [
        ("e1", "t1", "exact")
    ]
    assert report.accepted == ["e2"]


def test_routed_eval_items_reach_the_eval_store(workspace: Workspace, tmp_path: Path) -> None:
    ws = with_fraction(workspace, 0.5)
    rows = [
        chat(f"t{i}", f"u{i}", sentence()) | {"created_at": "2026-11-20T10:00:00Z"}
        for i in range(40)
    ]
    report = ingest_file(ws, write(tmp_path / "in.jsonl", rows))
    assert 5 < report.stored_eval < 35
    with EvalStore(ws.eval_store_path) as store:
        items = list(store.iter_items())
    assert {it.window for it in items} == {"2026-W47"}
    with TrainStore(ws.train_store_path) as tstore:
        train_users = {r.user_id for r in tstore.iter_records()}
    assert train_users.isdisjoint({it.record.user_id for it in items})


def test_routed_eval_items_pass_the_record_blocks(workspace: Workspace, tmp_path: Path) -> None:
    """Junk and thumbs-down answers never become references; corrections and redaction apply."""
    ws = with_fraction(workspace, 0.5)
    u = [k for k in (f"user{i}" for i in range(200))
         if group_side(ws.config.gateway, f"user:{k}") == "eval"][:5]  # fmt: skip
    question = "How do I change the address on my account before the card is posted out?"
    rows = [
        chat("good", u[0], question, "Open Settings, then Profile, and edit the address there."),
        chat("mash", u[1], "asdfgh jkl qwerty zxcvb asdfgh jkl qwerty zxcvb", "sdfg hjkl"),
        chat("down", u[2], question, "I cannot help with that.") | {"thumbs": "down"},
        chat("fixed", u[3], question, "No idea.")
        | {"correction": "Go to Settings, then Profile, and change the address."},
        chat("pii", u[4], question + " Write to me at jane.doe@example.com please.",
             "We have updated it for you; a confirmation is on the way."),
    ]  # fmt: skip
    report = ingest_file(ws, write(tmp_path / "in.jsonl", rows))
    assert report.routed["eval"] == 5 and report.stored_eval == 3
    assert report.dropped == {
        "eval_curation:quality:" + next(iter(_reasons(report, "mash"))): 1,
        "eval_curation:feedback:thumbs_down": 1,
    }
    with EvalStore(ws.eval_store_path) as store:
        items = {it.item_id: it.record for it in store.iter_items()}
    assert set(items) == {"good", "fixed", "pii"}
    assert items["fixed"].messages[-1].content.startswith("Go to Settings")
    assert "jane.doe@example.com" not in items["pii"].content_text


def _reasons(report: Any, rid: str) -> set[str]:
    rows = [json.loads(x) for x in Path(report.rejects_file).read_text().splitlines()]
    return {r["reason"] for r in rows if r["id"] == rid}


def test_curate_certifies_against_the_current_index(workspace: Workspace, tmp_path: Path) -> None:
    workspace = with_fraction(workspace, 0.0)
    rows = [
        chat(f"t{i}", f"u{i}", f"My email is person{i}@example.com. " + sentence())
        for i in range(30)
    ]
    ingest_file(workspace, write(tmp_path / "in.jsonl", rows))
    first = curate(workspace)
    add_file(workspace, write(tmp_path / "e.jsonl", [{"id": "late", "text": sentence()}]), "s")
    second = curate(workspace)
    assert first.certificate["index_version"] != second.certificate["index_version"]
    store = DatasetStore(workspace.datasets_dir)
    manifest = store.show(second.version)
    with EvalStore(workspace.eval_store_path) as estore:
        assert manifest["contamination_certificate"]["index_version"] == estore.head()
    records = store.load(second.version)
    assert len(records) == 30 and all("@example.com" not in r.content_text for r in records)
    assert second.train + second.validation == len(records)
