"""``tuneloop forget --user U | --conversation C``: erase a person's data everywhere.

In order, so that a crash part-way leaves nothing half-known (run it again to finish):

1. find the subject's records: the training store (a user's conversations come along), the
   eval store, the serving log; keep their texts in memory for the final check only;
2. lineage: the dataset versions and replay-buffer versions holding them, and the model
   versions trained on those, which are marked *tainted* in the registry before anything is
   removed (so a crash cannot lose the list);
3. remove: training-store rows, feedback and routing entries; eval items' text (the hash
   chain still verifies); serving-log text; cached answers to the erased items; records and
   rejects rows in every dataset version and replay version; lines of every JSONL file in the
   workspace (rejects, inbox, collected inputs); the contamination index is rebuilt without
   the erased items and its older versions are deleted. Every SQLite file touched is rewritten
   so that no free page or write-ahead log keeps the text;
4. check: every file under the workspace is searched for the erased texts;
5. a receipt (``erasures/<request>.json``) says what was removed where, which model versions
   are tainted, and what the check found. It names the subject, never their text.

What a tainted *production* version means for the next cycle is ``cycle.on_tainted``:
``retrain`` (the default: the next cycle trains on data without the subject even when nothing
else is new) or ``rollback`` (production moves to the newest untainted version at once).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tuneloop.contamination.persist import prune_versions
from tuneloop.datasets import DatasetStore
from tuneloop.erasure import Subject, find_bytes, find_plain, needles, scrub_jsonl
from tuneloop.errors import TuneloopError
from tuneloop.evalside.evaluator import CACHE_FILE, AnswerCache
from tuneloop.evalside.intake import load_or_rebuild
from tuneloop.evalside.store import EvalStore
from tuneloop.flows.register import registry_for
from tuneloop.jsonl import write_json
from tuneloop.state.serving_log import ServingLog
from tuneloop.train.replay import ReplayBuffer
from tuneloop.trainstore import TrainStore
from tuneloop.workspace import Workspace


@dataclass
class Found:
    subject: Subject
    train_ids: list[str]
    eval_ids: list[str]
    texts: list[str]
    shared: set[str]  # texts other people's data also holds: theirs too, they stay


def _eval_items(store: EvalStore, user: str | None, conversations: set[str]) -> dict[str, Any]:
    """{item id: record} of the subject's eval items, their conversations followed through."""
    ids = set(store.find(user_id=user)) if user else set()
    seen: set[str] = set()
    while True:
        found = {i.item_id: i.record for i in store.iter_items() if i.item_id in ids}
        more = ({r.conversation_id for r in found.values() if r.conversation_id}
                | conversations) - seen  # fmt: skip
        if not more:
            return found
        for conv in more:
            ids |= set(store.find(conversation_id=conv))
        seen |= more


def find(ws: Workspace, user: str | None, conversation: str | None) -> Found:
    with TrainStore(ws.store("train", "erasure")) as store:
        train = store.subject_records(user, conversation)
    conversations = {conversation} if conversation else set()
    conversations |= {r.conversation_id for r in train if r.conversation_id}
    with EvalStore(ws.store("eval", "erasure")) as estore:
        items = _eval_items(estore, user, conversations)
    conversations |= {r.conversation_id for r in items.values() if r.conversation_id}
    texts = [t for r in (*train, *items.values()) for t in _texts(r)]
    subject = Subject(frozenset({user} if user else ()), frozenset(conversations),
                      frozenset(r.id for r in train))  # fmt: skip
    shared = _others_texts(ws, subject, set(items))
    if ws.has_serving_log():
        log = ServingLog(ws.store("serving", "erasure"))
        try:
            texts += log.texts_of([user] if user else [], sorted(conversations))
            shared |= log.texts_except([user] if user else [], sorted(conversations))
        finally:
            log.close()
    return Found(subject, [r.id for r in train], sorted(items), texts, shared)


def _others_texts(ws: Workspace, subject: Subject, eval_ids: set[str]) -> set[str]:
    """The texts that stay after the erasure because others hold them too: other people's
    records and eval items (a templated message many users sent), and the workspace's own
    configuration (a system prompt every client sends)."""
    shared: set[str] = set()
    with TrainStore(ws.store("train", "erasure")) as store:
        shared.update(t for r in store.iter_records() if not subject.owns(r.to_dict())
                      for t in _texts(r))  # fmt: skip
    with EvalStore(ws.store("eval", "erasure")) as estore:
        shared.update(t for i in estore.iter_items() if i.item_id not in eval_ids
                      for t in _texts(i.record))  # fmt: skip
    return shared


def _texts(record: Any) -> list[str]:
    return [record.content_text, *(t for t in (record.correction,) if t)]


def lineage(ws: Workspace, train_ids: set[str]) -> dict[str, list[str]]:
    """The dataset, replay and model versions that hold (or were trained on) these records."""
    datasets = DatasetStore(ws.datasets_dir)
    hit = [v for v in datasets.versions() if datasets.ids(v) & train_ids]
    buffer = ReplayBuffer(ws.replay_dir)
    replay = [v for v in buffer.versions() if buffer.ids(v) & train_ids]
    models: list[str] = []
    for mv in registry_for(ws).list():  # oldest first: a seed's taint passes to what grew from it
        seed = (mv.lineage.hyperparameters.get("init_from") or {}).get("version")
        if (mv.lineage.dataset_version in hit or (mv.lineage.replay_version or None) in replay
                or seed in models):  # fmt: skip
            models.append(mv.version)
    return {"datasets": hit, "replay_versions": replay, "models": models}


def _request_id(user: str | None, conversation: str | None) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    who = hashlib.sha256(f"{user}|{conversation}".encode()).hexdigest()[:8]
    return f"erase-{stamp}-{who}"


def _remove(ws: Workspace, found: Found, request_id: str) -> dict[str, Any]:
    subject, removed = found.subject, dict[str, Any]()
    keys = [f"user:{u}" for u in subject.users]
    keys += [f"conversation:{c}" for c in subject.conversations]
    with TrainStore(ws.store("train", "erasure")) as store:
        removed["train_store"] = store.erase(found.train_ids, keys)
    with EvalStore(ws.store("eval", "erasure")) as estore:
        removed["eval_store"] = {"items": estore.erase(found.eval_ids, request_id)}
        load_or_rebuild(ws, estore)  # the index without the erased items
    removed["index_versions_deleted"] = prune_versions(ws.index_dir)
    if ws.has_serving_log():
        log = ServingLog(ws.store("serving", "erasure"))
        try:
            removed["serving_log"] = log.erase(sorted(subject.users), sorted(subject.conversations))
        finally:
            log.close()
    cache_path = ws.eval_cache_dir / CACHE_FILE
    if cache_path.is_file():
        cache = AnswerCache(cache_path)
        try:
            removed["eval_answer_cache"] = cache.forget(found.eval_ids)
        finally:
            cache.close()
    datasets = DatasetStore(ws.datasets_dir)
    per_version = {v: datasets.erase(v, subject, request_id) for v in datasets.versions()}
    removed["datasets"] = {v: n for v, n in per_version.items() if any(n.values())}
    removed["replay_buffer"] = ReplayBuffer(ws.replay_dir).erase(subject)
    files = {str(p.relative_to(ws.root)): scrub_jsonl(p, subject) for p in ws.root.rglob("*.jsonl")}
    removed["jsonl_files"] = {name: n for name, n in files.items() if n}
    return removed


def _taint(ws: Workspace, models: list[str], request_id: str) -> None:
    registry = registry_for(ws)
    at = datetime.now(UTC).isoformat(timespec="seconds")
    for version in models:
        if registry.get(version).tainted is None:
            registry.set_tainted(version, {"request_id": request_id, "at": at,
                                           "reason": "trained on data since erased"})  # fmt: skip


def leftovers(ws: Workspace, found: Found) -> dict[str, Any]:
    """Where any erased text is still found: raw bytes of every file, and dataset rows."""
    wanted = needles(found.texts)
    config = ws.config_path.read_bytes() if ws.config_path.is_file() else b""
    shared = (set(needles(found.shared)) & set(wanted)) | {w for w in wanted if w in config}
    searched = [w for w in wanted if w not in shared]
    hits = find_bytes(ws.root, searched)
    if ws.config.security.encryption:  # the disk is ciphertext: look at what it decrypts to
        hits.update(find_plain(ws.root, searched))
    datasets = DatasetStore(ws.datasets_dir)
    owned = {v: sum(found.subject.found_in(r.to_dict()) for r in datasets.load(v))
             for v in datasets.versions()}  # fmt: skip
    rows = {v: n for v, n in owned.items() if n}
    return {"files": hits, "dataset_rows": rows, "texts_searched": len(wanted) - len(shared),
            "texts_others_hold_too": len(shared)}  # fmt: skip


def forget(
    ws: Workspace, user: str | None = None, conversation: str | None = None
) -> dict[str, Any]:
    """Erase a user's (or a conversation's) data from the workspace; the receipt."""
    if (user is None) == (conversation is None):
        raise TuneloopError("name whom to forget: --user USER or --conversation CONVERSATION")
    start = time.perf_counter()
    request_id = _request_id(user, conversation)
    found = find(ws, user, conversation)
    affected = lineage(ws, set(found.train_ids))
    _taint(ws, affected["models"], request_id)
    removed = _remove(ws, found, request_id)
    production = registry_for(ws).aliases().get("production")
    left = leftovers(ws, found)
    receipt = {
        "request_id": request_id,
        "subject": {"user": user, "conversation": conversation,
                    "conversations": sorted(found.subject.conversations)},
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "found": {"training_records": len(found.train_ids), "eval_items": len(found.eval_ids)},
        "lineage": affected,
        "tainted_models": affected["models"],
        "production_tainted": production in affected["models"],
        "on_tainted": ws.config.cycle.on_tainted,
        "removed": removed,
        "check": {**left, "clean": not left["files"] and not left["dataset_rows"]},
        "seconds": round(time.perf_counter() - start, 3),
    }  # fmt: skip
    write_json(ws.erasure_receipt_path(request_id), receipt)
    return receipt
