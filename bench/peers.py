"""The peer implementation the dedup benchmark compares with: datasketch's MinHashLSH.

It is used the way its documentation shows for deduplication: one MinHash per document over
the same normalized word 5-grams tuneloop uses (``update_batch``), query the LSH index of kept
documents, keep the document if nothing comes back, else report the first match with
datasketch's estimated Jaccard. Reading and writing are the same JSONL as tuneloop's.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import orjson
from datasketch import MinHash, MinHashLSH

from tuneloop.textnorm import normalize


def shingles(text: str, n: int = 5) -> list[bytes]:
    words = normalize(text).split()
    if len(words) < n:
        return [" ".join(words).encode()] if words else []
    return list({" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)})


def datasketch_dedup(src: Path, out: Path, dups: Path, threshold: float, num_perm: int) -> dict:
    start = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept: dict[str, MinHash] = {}
    with src.open("rb") as fin, out.open("wb") as fout, dups.open("wb") as fdup:
        for line_no, line in enumerate(fin):
            obj = orjson.loads(line)
            key = str(obj.get("id", line_no))
            m = MinHash(num_perm=num_perm)
            m.update_batch(shingles(obj["text"]))
            found = lsh.query(m)
            if found:
                first = found[0]
                row = {"id": key, "duplicate_of": first, "jaccard": m.jaccard(kept[first])}
                fdup.write(orjson.dumps(row) + b"\n")
                continue
            lsh.insert(key, m)
            kept[key] = m
            fout.write(line)
    return {"seconds": time.perf_counter() - start, "bands": lsh.b, "rows": lsh.r}


if __name__ == "__main__":
    src, out, dups = (Path(p) for p in sys.argv[1:4])
    print(json.dumps(datasketch_dedup(src, out, dups, float(sys.argv[4]), int(sys.argv[5]))))
