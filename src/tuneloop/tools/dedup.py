"""``tuneloop dedup``: near-duplicate removal on a JSONL file, first of each cluster kept."""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tuneloop.jsonl import DEFAULT_MAX_LINE_BYTES, atomic_writer, dumps
from tuneloop.minhash.neardup import NearDupFinder, NearDupResult
from tuneloop.minhash.signatures import MinHasher
from tuneloop.tools.scan import Scan, iter_raw_records, scan_texts


@dataclass(frozen=True)
class DedupSummary:
    records_in: int
    records_out: int
    duplicates: int
    candidate_pairs: int
    verified_pairs: int
    threshold: float
    ngram: int
    num_perm: int
    bands: int
    rows: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _write_outputs(
    in_path: Path, out_path: Path, dups_path: Path | None, scan: Scan, result: NearDupResult
) -> None:
    """Write both outputs to temporary files; both are renamed into place only at the end."""
    dup_of = result.dup_of
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(atomic_writer(out_path))
        dups = stack.enter_context(atomic_writer(dups_path)) if dups_path else None
        batch: list[bytes] = []
        for index, raw in iter_raw_records(in_path, scan):
            if dup_of[index] < 0:
                batch.append(raw)
            elif dups is not None:
                row = {
                    "id": scan.ids[index],
                    "duplicate_of": scan.ids[int(dup_of[index])],
                    "jaccard": round(float(result.jaccard[index]), 6),
                }
                dups.write(dumps(row))
            if len(batch) >= 4096:
                out.write(b"\n".join(batch) + b"\n")
                batch.clear()
        if batch:
            out.write(b"\n".join(batch) + b"\n")


def dedup_file(
    in_path: Path,
    out_path: Path,
    dups_path: Path | None = None,
    threshold: float = 0.8,
    ngram: int = 5,
    num_perm: int = 128,
    text_field: str | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> DedupSummary:
    """Read ``in_path``; write kept records to ``out_path``, removed ones to ``dups_path``."""
    start = time.perf_counter()
    hasher = MinHasher(ngram=ngram, num_perm=num_perm, threshold=threshold)
    finder = NearDupFinder(hasher)
    scan = scan_texts(in_path, finder.add_packed, text_field, max_line_bytes)
    result = finder.resolve()
    _write_outputs(in_path, out_path, dups_path, scan, result)
    return DedupSummary(
        records_in=len(scan),
        records_out=len(scan) - result.duplicates,
        duplicates=result.duplicates,
        candidate_pairs=result.candidate_pairs,
        verified_pairs=result.verified_pairs,
        threshold=threshold,
        ngram=ngram,
        num_perm=num_perm,
        bands=hasher.banding.bands,
        rows=hasher.banding.rows,
        seconds=round(time.perf_counter() - start, 3),
    )
