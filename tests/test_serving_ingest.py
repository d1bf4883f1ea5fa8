"""Every response and its feedback reach ``tuneloop ingest --serving-log``, exactly once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tuneloop.flows.serving import FEEDBACK, RESPONSES, ingest_serving_log
from tuneloop.state.serving_log import FeedbackRow, ResponseRow, ServingLog
from tuneloop.trainstore import TrainStore
from tuneloop.workspace import Workspace

from support.clirun import run
from support.liveserver import serve_workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return serve_workspace(tmp_path / "ws", tmp_path / "no-model")


def response(i: int, user: str, tenant: str = "local", **kw: object) -> ResponseRow:
    messages = [{"role": "user", "content": f"how do I reset the password of account {i}?"}]
    kw.setdefault("answer", f"Open settings and choose reset for account {i}.")
    return ResponseRow(f"chatcmpl-{i}", tenant, messages, "production", "3",
                       user_id=user,
                       finish_reason="stop", **kw)  # type: ignore[arg-type]  # fmt: skip


def log_rows(ws: Workspace, *rows: ResponseRow | FeedbackRow) -> None:
    log = ServingLog(ws.serving_log_path)
    log.append(list(rows))
    log.close()


def stored(ws: Workspace) -> dict[str, object]:
    with TrainStore(ws.train_store_path) as store:
        return {r.id: r for r in store.iter_records()}


def test_responses_become_chats_with_their_feedback_joined(ws: Workspace) -> None:
    log_rows(ws, response(1, "u1"), response(2, "u2"), response(3, "u3", status="error",
             answer=None), FeedbackRow("fb-1", "chatcmpl-1", "local", thumbs="down"),
             FeedbackRow("fb-2", "chatcmpl-1", "local", correction="Use the reset link."),
             FeedbackRow("fb-3", "chatcmpl-2", "local", rating=5, comment="great"))  # fmt: skip
    out = ingest_serving_log(ws)
    assert out.responses_read == 3 and out.not_answered == {"error": 1}
    assert out.ingest.records == 2 and out.feedback_joined == 3
    records = stored(ws)
    one = records["chatcmpl-1"]
    assert one.thumbs == "down" and one.correction == "Use the reset link."  # type: ignore[attr-defined]
    assert [m.role for m in one.messages] == ["user", "assistant"]  # type: ignore[attr-defined]
    two = records["chatcmpl-2"]
    assert two.rating == 5 and two.meta["feedback_comments"] == ["great"]  # type: ignore[attr-defined]
    assert two.source == "serving" and two.meta["model_version"] == "3"  # type: ignore[attr-defined]


def test_a_second_read_ingests_nothing_twice(ws: Workspace) -> None:
    log_rows(ws, response(1, "u1"))
    ingest_serving_log(ws)
    again = ingest_serving_log(ws)
    assert again.responses_read == 0 and again.ingest.records == 0
    log_rows(ws, response(2, "u2"))
    third = ingest_serving_log(ws)
    assert third.responses_read == 1 and len(stored(ws)) == 2
    assert third.cursors[RESPONSES] == 2


def test_late_feedback_reaches_the_stored_record_once(ws: Workspace) -> None:
    log_rows(ws, response(1, "u1"))
    ingest_serving_log(ws)
    log_rows(ws, FeedbackRow("fb-late", "chatcmpl-1", "local", thumbs="down",
                             correction="Call us instead."))  # fmt: skip
    late = ingest_serving_log(ws)
    assert late.late_feedback_applied == 1 and late.ingest.records == 0
    record = stored(ws)["chatcmpl-1"]
    assert record.correction == "Call us instead." and record.thumbs == "down"  # type: ignore[attr-defined]
    assert ingest_serving_log(ws).late_feedback_applied == 0
    with TrainStore(ws.train_store_path) as store:
        assert store.cursor(FEEDBACK) == 1


def test_late_feedback_for_an_eval_bound_response_is_refused_with_its_reason(
    tmp_path: Path,
) -> None:
    ws = serve_workspace(tmp_path / "ws", tmp_path / "no-model", eval_fraction=0.5)
    rows = [response(i, f"user{i}") for i in range(12)]
    log_rows(ws, *rows)
    first = ingest_serving_log(ws)
    assert first.ingest.routed["eval"] > 0
    in_train = set(stored(ws))
    eval_bound = next(r.response_id for r in rows if r.response_id not in in_train)
    log_rows(ws, FeedbackRow("fb-e", eval_bound, "local", correction="x"))
    late = ingest_serving_log(ws)
    assert late.late_feedback_refused == 1
    assert late.ingest.dropped == {"serving_feedback:late_feedback_not_in_training_store": 1}


def test_feedback_window_holds_back_fresh_responses(ws: Workspace) -> None:
    ws = ws.configure({"serve.feedback_window_s": 3600})
    log_rows(ws, response(1, "u1"))
    assert ingest_serving_log(ws).responses_read == 0
    import time

    assert ingest_serving_log(ws, now=time.time() + 3601).responses_read == 1


def test_tenants_qualify_user_ids(ws: Workspace) -> None:
    log_rows(ws, response(1, "42", tenant="bank"), response(2, "42", tenant="clinic"))
    ingest_serving_log(ws)
    users = {r.user_id for r in stored(ws).values()}  # type: ignore[attr-defined]
    assert users == {"bank:42", "clinic:42"}


def test_the_cli_reads_the_serving_log(ws: Workspace, tmp_path: Path) -> None:
    log_rows(ws, response(1, "u1"))
    done = run("ingest", "--serving-log", "-w", ws.root, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert '"late_feedback_applied": 0' in done.stdout
    both = run("ingest", "x.jsonl", "--serving-log", "-w", ws.root, cwd=tmp_path)
    assert both.returncode == 2 and "one of the two" in both.stderr


def test_answers_cut_at_max_tokens_are_not_learned(ws: Workspace) -> None:
    """A thumbs-up on an answer the token limit cut judged what the user read; the answer
    itself stops mid-sentence and must not become a training target."""
    from tuneloop.datasets import DatasetStore
    from tuneloop.flows.curate import curate

    cut = replace(response(1, "u1", answer='{"intent": "card_lost", "priority": "high", "rep'),
                  finish_reason="length")  # fmt: skip
    fixed = replace(response(2, "u2"), finish_reason="length")
    liked = FeedbackRow("fb-1", "chatcmpl-1", "local", thumbs="up")
    corrected = FeedbackRow("fb-2", "chatcmpl-2", "local", correction="Use the reset link.")
    log_rows(ws, cut, response(3, "u3"), fixed, liked, corrected)
    out = ingest_serving_log(ws)
    assert set(stored(ws)) == {"chatcmpl-1", "chatcmpl-2", "chatcmpl-3"}  # all training-side
    report = curate(ws)
    feedback = next(b for b in report.blocks if b["name"] == "feedback")
    kept = {r.id for r in DatasetStore(ws.datasets_dir).load(report.version)}
    assert out.ingest.records == 3 and feedback["dropped"] == {"cut_at_max_tokens": 1}
    assert kept == {"chatcmpl-2", "chatcmpl-3"}  # the corrected one is a whole answer
