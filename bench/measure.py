"""Run one measured job in a fresh process: print its result and its peak memory as JSON.

Each tool runs in its own interpreter so that peak RSS belongs to that tool alone.
Usage: python -m bench.measure JOB ARGS... (jobs: tuneloop-dedup, datasketch-dedup).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def main() -> None:
    job, *args = sys.argv[1:]
    start = time.perf_counter()
    if job == "tuneloop-dedup":
        from tuneloop.tools.dedup import dedup_file

        src, out, dups = (Path(a) for a in args[:3])
        result = dedup_file(src, out, dups).to_dict()
    elif job == "datasketch-dedup":
        from bench.peers import datasketch_dedup

        src, out, dups = (Path(a) for a in args[:3])
        result = datasketch_dedup(src, out, dups, 0.8, 128)
    else:
        raise SystemExit(f"unknown job {job}")
    result["process_seconds"] = time.perf_counter() - start
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
