"""Near-duplicate detection over a stream of documents, in bounded memory.

Documents are added in chunks. For each one we keep its LSH band keys (``bands`` × 8 bytes) and
its encoded text, which moves to a temporary file once the texts pass ``memory_budget`` bytes.
At the end, each band's documents are grouped into buckets of equal keys; only documents that
share a bucket get their shingle sets built. Documents are then decided in input order, each
compared with the exact Jaccard similarity of its shingle set against the kept documents of its
buckets, earliest first: every reported pair is truly at or above the threshold, and no list of
candidate pairs is built (a cluster of k copies would make k² of them).
"""

from __future__ import annotations

import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from tuneloop.minhash import kernels
from tuneloop.minhash.signatures import I64Array, MinHasher, U8Array, U64Array

MAX_BUCKET = 64


@dataclass(frozen=True)
class NearDupResult:
    """For every document: the index of the kept document it duplicates (-1 if kept), and J.

    ``candidate_pairs`` counts the distinct (document, earlier kept document) pairs that share
    a band, the only pairs that can change the answer; ``verified_pairs`` the exact Jaccard
    computations (a document stops at its first match).
    """

    dup_of: I64Array
    jaccard: npt.NDArray[np.float64]
    candidate_pairs: int
    verified_pairs: int

    @property
    def duplicates(self) -> int:
        return int(np.count_nonzero(self.dup_of >= 0))


@dataclass
class _TextStore:
    """The encoded text of every document added so far; on disk past a memory budget."""

    memory_budget: int
    chunks: list[tuple[U8Array, I64Array]] = field(default_factory=list)
    firsts: list[int] = field(default_factory=lambda: [0])
    nbytes: int = 0
    file: BinaryIO | None = None
    tmpdir: tempfile.TemporaryDirectory[str] | None = None
    file_offsets: list[I64Array] = field(default_factory=list)

    def add(self, buf: U8Array, offsets: I64Array) -> None:
        self.firsts.append(self.firsts[-1] + offsets.shape[0] - 1)
        self.nbytes += int(offsets[-1])
        if self.file is None and self.nbytes > self.memory_budget:
            self._spill()
        if self.file is None:
            self.chunks.append((buf, offsets))
        else:
            self._write(buf, offsets)

    def _spill(self) -> None:
        self.tmpdir = tempfile.TemporaryDirectory(prefix="tuneloop-neardup-")
        self.file = Path(self.tmpdir.name, "texts.bin").open("wb")  # noqa: SIM115
        for buf, offsets in self.chunks:
            self._write(buf, offsets)
        self.chunks.clear()

    def _write(self, buf: U8Array, offsets: I64Array) -> None:
        assert self.file is not None
        base = self.file.tell()
        buf[: offsets[-1]].tofile(self.file)
        self.file_offsets.append(offsets[1:] + base)

    def gather(self, docs: I64Array) -> tuple[U8Array, I64Array]:
        """The texts of ``docs`` (sorted document indices), packed."""
        if self.file is not None:
            return self._gather_from_file(docs)
        parts = []
        bounds = np.searchsorted(docs, self.firsts)
        for c, (buf, offsets) in enumerate(self.chunks):
            local = docs[bounds[c] : bounds[c + 1]] - self.firsts[c]
            parts.append(kernels.gather(buf, offsets, local))
        return _concat_packed(parts)

    def _gather_from_file(self, docs: I64Array, window: int = 64 << 20) -> tuple[U8Array, I64Array]:
        """Read the spilled texts window by window (plain reads, not a memory map, so the pages
        of the whole file never count as this process's memory)."""
        assert self.file is not None
        self.file.flush()
        offsets = np.concatenate([np.zeros(1, dtype=np.int64), *self.file_offsets])
        parts = []
        with Path(self.file.name).open("rb") as fh:
            start = 0
            while start < docs.shape[0]:
                first = int(offsets[docs[start]])
                stop = int(np.searchsorted(offsets[docs + 1], first + window, side="right"))
                stop = max(stop, start + 1)
                last = int(offsets[docs[stop - 1] + 1])
                fh.seek(first)
                buf = np.frombuffer(fh.read(last - first), dtype=np.uint8)
                local = offsets - first
                parts.append(kernels.gather(_nonempty(buf), local, docs[start:stop]))
                start = stop
        return _concat_packed(parts)

    def close(self) -> None:
        if self.file is not None and not self.file.closed:
            self.file.close()
        if self.tmpdir is not None:
            self.tmpdir.cleanup()


def _nonempty(buf: U8Array) -> U8Array:
    return buf if buf.size else np.zeros(1, dtype=np.uint8)


def _concat_packed(parts: list[tuple[U8Array, I64Array]]) -> tuple[U8Array, I64Array]:
    if not parts:
        return np.zeros(1, dtype=np.uint8), np.zeros(1, dtype=np.int64)
    lengths = np.concatenate([np.diff(off) for _, off in parts])
    offsets = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return _nonempty(np.concatenate([b[: off[-1]] for b, off in parts])), offsets


class NearDupFinder:
    """Add documents in chunks, then :meth:`resolve` which ones duplicate an earlier one.

    Signatures of a chunk are computed on a background thread (the kernels release the GIL)
    while the caller parses the next chunk; at most two chunks are in flight.
    """

    def __init__(self, hasher: MinHasher, memory_budget: int = 256 * 1024 * 1024) -> None:
        self.hasher = hasher
        self._keys: list[U64Array] = []
        self._pending: list[Future[U64Array]] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tuneloop-minhash")
        self._texts = _TextStore(memory_budget)
        self.count = 0

    def _keys_of(self, buf: U8Array, offsets: I64Array) -> U64Array:
        return self.hasher.band_keys(self.hasher.signatures(buf, offsets))

    def add_packed(self, buf: U8Array, offsets: I64Array) -> None:
        while len(self._pending) >= 2:
            self._keys.append(self._pending.pop(0).result())
        self._pending.append(self._pool.submit(self._keys_of, buf, offsets))
        self._texts.add(buf, offsets)
        self.count += offsets.shape[0] - 1

    def _drain(self) -> None:
        while self._pending:
            self._keys.append(self._pending.pop(0).result())
        self._pool.shutdown()

    def buckets(self) -> tuple[npt.NDArray[np.int32], I64Array]:
        """Every document's bucket number per band (-1: alone there), and where each bucket's
        kept documents go: bucket k has ``MAX_BUCKET`` places at most, past which a pile of
        distinct documents sharing a key would cost a comparison per pair."""
        self._drain()
        keys = np.concatenate(self._keys) if self._keys else np.zeros((0, 1), dtype=np.uint64)
        self._keys = []
        ids = np.empty(keys.shape, dtype=np.int32)
        column = np.empty(keys.shape[0], dtype=np.int32)
        sizes: list[I64Array] = []
        first = 0
        for band in range(keys.shape[1]):
            keys_of_band = np.ascontiguousarray(keys[:, band])
            order = np.argsort(keys_of_band)
            sizes.append(kernels.band_buckets(keys_of_band[order], order, first, column))
            first += sizes[-1].shape[0]
            ids[:, band] = column
        room = np.minimum(np.concatenate(sizes), MAX_BUCKET) if sizes else np.zeros(0, np.int64)
        if room.shape[0] >= np.iinfo(np.int32).max:
            raise ValueError("too many LSH buckets for 32-bit bucket numbers")
        kept_start = np.zeros(room.shape[0] + 1, dtype=np.int64)
        np.cumsum(room, out=kept_start[1:])
        return ids, kept_start

    def resolve(self) -> NearDupResult:
        try:
            ids, kept_start = self.buckets()
            docs = np.flatnonzero((ids >= 0).any(axis=1)).astype(np.int64)
            sets = self.hasher.shingle_sets(*self._texts.gather(docs))
            local = np.full(self.count, -1, dtype=np.int64)
            local[docs] = np.arange(docs.shape[0])
            dup_of = np.full(self.count, -1, dtype=np.int64)
            score = np.zeros(self.count, dtype=np.float64)
            candidates, verified = kernels.greedy_buckets(
                ids, kept_start, local, sets.values, sets.offsets, self.hasher.threshold,
                dup_of, score,
            )  # fmt: skip
            return NearDupResult(dup_of, score, int(candidates), int(verified))
        finally:
            self._texts.close()
