"""``tuneloop ingest --serving-log``: the server's responses and feedback become interactions.

Each response at least ``serve.feedback_window_s`` old becomes one chat record (the request's
messages plus the answer) with its feedback joined by response id: the latest thumbs, rating
and correction win, comments go to ``meta``. Feedback that arrives after its response was
ingested is applied to the training store's record (a correction a day later still reaches
curation), exactly once: both cursors (responses, feedback) are committed in the same
transaction as the records they produced. Late feedback for a response that did not reach the
training store (it went to the eval bucket, whose items never change, or was dropped) is
written to the rejects file with that reason.

User ids are qualified by the API key's tenant (``tenant:user``), so two tenants' user 42 are
two users to the gateway; without keys the tenant is ``local`` and ids are kept as sent.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneloop.errors import WorkspaceError
from tuneloop.flows.ingest import Extras, IngestReport, ingest_records
from tuneloop.records import Record, record_from_obj
from tuneloop.state.serving_log import LOCAL_TENANT, ServingLog
from tuneloop.trainstore import LateFeedback, TrainStore, with_feedback
from tuneloop.workspace import Workspace

RESPONSES, FEEDBACK = "serving_log.responses", "serving_log.feedback"


@dataclass
class ServingIngestReport:
    ingest: IngestReport
    responses_read: int = 0
    not_answered: Counter[str] = field(default_factory=Counter)  # error / cancelled
    feedback_joined: int = 0
    late_feedback_applied: int = 0
    late_feedback_refused: int = 0
    cursors: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "ingest"}
        out["not_answered"] = dict(self.not_answered)
        return {**self.ingest.to_dict(), "serving_log": out}


def _user(tenant: str, user: str | None) -> str | None:
    if user is None or tenant == LOCAL_TENANT:
        return user
    return f"{tenant}:{user}"


def record_of(row: dict[str, Any], feedback: list[dict[str, Any]], where: str) -> Record:
    """The response as a chat record, its feedback applied as the training store applies it."""
    messages = [*json.loads(row["messages_json"]), {"role": "assistant", "content": row["answer"]}]
    meta = {"arm": row["arm"], "model_version": row["model_version"],
            "adapter_sha256": row["adapter_sha256"], "tenant": row["tenant"],
            "finish_reason": row["finish_reason"], "latency_s": row["latency_s"]}  # fmt: skip
    if comments := [f["comment"] for f in feedback if f["comment"]]:
        meta["feedback_comments"] = comments
    obj = {"id": row["response_id"], "messages": messages,
           "user_id": _user(row["tenant"], row["user_id"]),
           "conversation_id": row["conversation_id"], "source": "serving",
           "created_at": row["created_at"], "meta": meta}  # fmt: skip
    record = record_from_obj(obj, where, int(row["seq"]))
    return with_feedback(record, [(f["thumbs"], f["rating"], f["correction"]) for f in feedback])


def _all(fetch: Any, after: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while page := [dict(r) for r in fetch(after)]:
        rows += page
        after = int(page[-1]["seq"])
    return rows


def ingest_serving_log(
    ws: Workspace, now: float | None = None, report_dir: Path | None = None, prefix: str = ""
) -> ServingIngestReport:
    """Ingest the responses old enough to have their feedback, and the late feedback, once.

    With ``prefix``, the batch is named by the cursors it starts from (``PREFIX-r12-f3``): a
    rerun after a crash before the commit starts from the same cursors and rewrites the same
    rejects file and report (in ``report_dir``), a later run gets names of its own.
    """
    if not ws.has_serving_log():
        raise WorkspaceError(f"{ws.serving_log_path}: no serving log yet; run `tuneloop serve`")
    with TrainStore(ws.store("train", "gateway")) as store:
        seen_r, seen_f = store.cursor(RESPONSES), store.cursor(FEEDBACK)
    cutoff = (time.time() if now is None else now) - ws.config.serve.feedback_window_s
    log = ServingLog(ws.store("serving", "gateway"))
    try:
        new_feedback = _all(log.feedback_after, seen_f)  # first: later rows wait for next time
        top_f = max((int(f["seq"]) for f in new_feedback), default=seen_f)
        responses = _all(lambda after: log.responses_after(after, cutoff), seen_r)
        joined = log.feedback_for([r["response_id"] for r in responses])
    finally:
        log.close()
    top_r = max((int(r["seq"]) for r in responses), default=seen_r)
    answered = [r for r in responses if r["status"] == "ok" and r["erased_at"] is None]
    where = str(ws.serving_log_path)
    by_response = {rid: [dict(f) for f in rows if int(f["seq"]) <= top_f]
                   for rid, rows in joined.items()}  # fmt: skip
    records = [record_of(r, by_response.get(r["response_id"], []), where) for r in answered]
    late = [f for f in new_feedback if f["response_seq"] is not None
            and int(f["response_seq"]) <= seen_r]  # fmt: skip
    apply, refuse = _late(ws, late)
    batch = f"{prefix}-r{seen_r}-f{seen_f}" if prefix else None
    report_path = report_dir / f"{batch or 'serving'}.json" if report_dir else None
    extras = Extras(apply, {RESPONSES: top_r, FEEDBACK: top_f}, refuse, batch, report_path)
    report = ingest_records(ws, records, f"serving log {where}", extras)
    return ServingIngestReport(
        report, len(responses), Counter(r["status"] for r in responses if r["status"] != "ok"),
        sum(len(v) for v in by_response.values()), len(apply), len(refuse),
        {RESPONSES: top_r, FEEDBACK: top_f},
    )  # fmt: skip


def _late(
    ws: Workspace, late: list[dict[str, Any]]
) -> tuple[list[LateFeedback], list[dict[str, Any]]]:
    """Late feedback for records in the training store is applied; the rest is refused, with why."""
    with TrainStore(ws.store("train", "gateway")) as store:
        present = store.existing_ids(f["response_id"] for f in late)
    apply, refuse = [], []
    for f in late:
        if f["response_id"] in present:
            apply.append(LateFeedback(f["response_id"], f"serving:{f['feedback_id']}",
                                      f["thumbs"], f["rating"], f["correction"]))  # fmt: skip
            continue
        refuse.append({
            "id": f["response_id"], "stage": "serving_feedback",
            "reason": "late_feedback_not_in_training_store", "feedback_id": f["feedback_id"],
            "detail": "it went to the eval bucket (items never change) or was dropped at "
                      "ingest; see the earlier rejects files",
        })  # fmt: skip
    return apply, refuse
