"""The replay buffer: a bounded, versioned sample of earlier rounds' training data.

Fine-tuning on this week's data alone makes a model forget what earlier rounds taught it;
mixing a share of earlier examples back in ("replay") is the standard, cheap defence. The buffer
is bounded (``capacity``), every update makes a new immutable version (its id goes into the
model's lineage), and three strategies decide what stays:

- ``reservoir``: a uniform sample over everything ever added (Vitter's algorithm R), so every
  past round is represented in proportion to its size;
- ``stratified``: capacity split evenly across strata (the record's source, or a task tag), each
  stratum a reservoir, so a small task is not crowded out by a big one;
- ``loss``: keeps the examples the current model finds hardest (highest loss), the ones most at
  risk of being forgotten.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from tuneloop.encryption import files as sealed_files
from tuneloop.erasure import Subject
from tuneloop.errors import ConfigError
from tuneloop.jsonl import atomic_writer
from tuneloop.records import Record, record_from_obj
from tuneloop.workspace import current_version, set_current, versions_dir

Strategy = Literal["reservoir", "stratified", "loss"]
STRATEGIES: tuple[str, ...] = ("reservoir", "stratified", "loss")
BUFFER_FILE = "buffer.json"  # in each version's folder (the buffer is a versioned folder)


@dataclass
class Entry:
    record: dict[str, Any]
    round: str  # the dataset version it came from
    stratum: str
    loss: float | None = None


@dataclass
class BufferState:
    capacity: int
    strategy: Strategy
    seed: int
    seen: int = 0  # records ever offered (reservoir arithmetic)
    seen_by_stratum: dict[str, int] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)
    parent: str | None = None
    rounds: list[str] = field(default_factory=list)

    def version(self) -> str:
        body = orjson.dumps(
            [self.capacity, self.strategy, self.seed, self.seen, [asdict(e) for e in self.entries]],
            option=orjson.OPT_SORT_KEYS,
        )
        return "rb-" + hashlib.sha256(body).hexdigest()[:12]


def stratum_of(record: Record) -> str:
    return str(record.meta.get("task") or record.source or "default")


def _reservoir(
    entries: list[Entry], seen: int, new: Sequence[Entry], capacity: int, rng: random.Random
) -> tuple[list[Entry], int]:
    """Algorithm R: after n offers, each offered item is kept with probability capacity / n."""
    out = list(entries)
    for entry in new:
        seen += 1
        if len(out) < capacity:
            out.append(entry)
        else:
            slot = rng.randrange(seen)
            if slot < capacity:
                out[slot] = entry
    return out, seen


def _update(state: BufferState, new: Sequence[Entry], rng: random.Random) -> None:
    if state.strategy == "reservoir":
        state.entries, state.seen = _reservoir(state.entries, state.seen, new, state.capacity, rng)
    elif state.strategy == "loss":
        state.seen += len(new)
        pool = state.entries + list(new)
        pool.sort(key=lambda e: (-(e.loss if e.loss is not None else float("-inf")), e.round))
        state.entries = pool[: state.capacity]
    else:
        _stratified(state, new, rng)


def _stratified(state: BufferState, new: Sequence[Entry], rng: random.Random) -> None:
    strata = sorted({e.stratum for e in state.entries} | {e.stratum for e in new})
    share = max(1, state.capacity // max(1, len(strata)))
    kept: list[Entry] = []
    for s in strata:
        mine = [e for e in state.entries if e.stratum == s]
        incoming = [e for e in new if e.stratum == s]
        seen = state.seen_by_stratum.get(s, 0)
        mine = mine[:share]  # a new stratum shrinks everyone's share
        mine, seen = _reservoir(mine, seen, incoming, share, rng)
        state.seen_by_stratum[s] = seen
        kept.extend(mine)
    state.seen += len(new)
    state.entries = kept[: state.capacity]


class ReplayBuffer:
    """Versions live under ``root/versions/<id>/`` (buffer.json); ``CURRENT`` names the latest."""

    def __init__(
        self, root: Path, capacity: int = 2000, strategy: str = "reservoir", seed: int = 0
    ):
        if strategy not in STRATEGIES:
            raise ConfigError(f"replay strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
        if capacity < 1:
            raise ConfigError(f"replay capacity must be ≥ 1, got {capacity}")
        self.root = root
        self.capacity = capacity
        self.strategy: Strategy = strategy  # type: ignore[assignment]
        self.seed = seed

    def current(self) -> str | None:
        return current_version(self.root)

    def load(self, version: str | None = None) -> BufferState:
        version = version or self.current()
        if version is None:
            return BufferState(self.capacity, self.strategy, self.seed)
        raw = json.loads(sealed_files.read_bytes(versions_dir(self.root) / version / BUFFER_FILE))
        raw["entries"] = [Entry(**e) for e in raw["entries"]]
        return BufferState(**raw)

    def add_round(
        self, records: Sequence[Record], round_id: str, losses: Sequence[float] | None = None
    ) -> str:
        """Offer a round's training records; persist and return the new version id."""
        state = self.load()
        if round_id in state.rounds:
            return self.current() or state.version()
        parent = self.current()
        entries = [
            Entry(
                r.to_dict(), round_id, stratum_of(r), None if losses is None else float(losses[i])
            )
            for i, r in enumerate(records)
        ]
        rng = random.Random(f"{self.seed}:{round_id}:{state.seen}")
        _update(state, entries, rng)
        state.parent, state.rounds = parent, [*state.rounds, round_id]
        return self._save(state)

    def _save(self, state: BufferState) -> str:
        version = state.version()
        folder = versions_dir(self.root) / version
        if not folder.exists():
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
            body = {**asdict(state), "entries": [asdict(e) for e in state.entries]}
            with atomic_writer(tmp / BUFFER_FILE, "w", sealed=True) as fh:
                fh.write(json.dumps(body))
            try:
                tmp.rename(folder)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
        set_current(self.root, version)
        return version

    def versions(self) -> list[str]:
        folder = versions_dir(self.root)
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def erase(self, subject: Subject) -> dict[str, int]:
        """Remove the subject's records from every version; {version: records removed}.

        A version keeps its id (model lineages name it) though its entries changed: the
        erasure is the one edit a replay version may undergo.
        """
        removed: dict[str, int] = {}
        for version in self.versions():
            path = versions_dir(self.root) / version / BUFFER_FILE
            raw = json.loads(sealed_files.read_bytes(path))
            kept = [e for e in raw["entries"] if not subject.found_in(e["record"])]
            if len(kept) < len(raw["entries"]):
                removed[version] = len(raw["entries"]) - len(kept)
                raw["entries"] = kept
                with atomic_writer(path, "w", sealed=True) as fh:
                    fh.write(json.dumps(raw))
        return removed

    def ids(self, version: str) -> set[str]:
        """Record ids in one version."""
        return {str(e.record.get("id")) for e in self.load(version).entries}

    def version_before(self, round_id: str) -> str | None:
        """The newest version that does not contain ``round_id`` yet.

        Training on a round replays what came *before* it, whether or not that round has since
        been added (a finished run, then ``--resume``, must see the same buffer).
        """
        version = self.current()
        while version is not None:
            state = self.load(version)
            if round_id not in state.rounds:
                return version
            version = state.parent
        return None

    def sample(
        self, n: int, exclude: set[str], seed: int, version: str | None = None
    ) -> list[Record]:
        """``n`` records from a version (default: current), none whose id is in ``exclude``."""
        version = version or self.current()
        state = self.load(version)
        pool = [e for e in state.entries if str(e.record.get("id")) not in exclude]
        rng = random.Random(f"{seed}:{version}")
        chosen = pool if n >= len(pool) else rng.sample(pool, n)
        return [record_from_obj(e.record) for e in chosen]


def replay_count(train_size: int, ratio: float) -> int:
    """How many replay records make ``ratio`` of the mixed training set."""
    if not 0.0 <= ratio < 1.0:
        raise ConfigError(f"replay ratio must be in [0, 1), got {ratio}")
    return round(ratio * train_size / (1.0 - ratio))
