"""Run one measured job in a fresh process and measure its peak memory from outside.

Each tool runs in its own interpreter so that peak memory belongs to that tool alone. It is read
as VmHWM from /proc/<pid>/status, never as ``ru_maxrss``: Linux carries a parent's high-water
mark into ``ru_maxrss`` across fork + exec, so a job started by a 600 MB parent reports 600 MB
whatever it uses, while VmHWM starts afresh with the new program (checked: a 50 MB child of a
600 MB parent shows ru_maxrss 610 MB, VmHWM 61 MB, and ``/usr/bin/time -v`` 61 MB).
The parent samples the child's VmHWM while it runs; the child also reads its own at exit, after
all of its work, so a peak in the last sampling interval is not missed.
Usage: python -m bench.measure JOB ARGS... (jobs: tuneloop-dedup, datasketch-dedup).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

_HWM = re.compile(r"VmHWM:\s+(\d+) kB")


def vmhwm_mb(pid: int | str = "self") -> float:
    """The process's peak resident memory so far, in MB (0 once it has gone)."""
    try:
        found = _HWM.search(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return 0.0
    return int(found.group(1)) / 1024 if found else 0.0


def _sample(proc: subprocess.Popen[str], peak: list[float], every_s: float = 0.02) -> None:
    while proc.poll() is None:
        peak[0] = max(peak[0], vmhwm_mb(proc.pid))
        time.sleep(every_s)


def run_job(job: str, *args: str) -> dict[str, Any]:
    """Run ``job`` in a fresh interpreter; its JSON result with ``peak_rss_mb`` from outside."""
    cmd = [sys.executable, "-m", "bench.measure", job, *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0.0]
    sampler = threading.Thread(target=_sample, args=(proc, peak), daemon=True)
    sampler.start()
    out, err = proc.communicate()
    sampler.join()
    if proc.returncode:
        raise RuntimeError(f"{job} failed ({proc.returncode}): {err.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["sampled_peak_mb"] = peak[0]
    result["peak_rss_mb"] = max(peak[0], result.pop("own_vmhwm_mb"))
    return result


def _job(job: str, args: list[str]) -> dict[str, Any]:
    src, out, dups = (Path(a) for a in args[:3])
    if job == "tuneloop-dedup":
        from tuneloop.tools.dedup import dedup_file

        return dedup_file(src, out, dups).to_dict()
    if job == "datasketch-dedup":
        from bench.peers import datasketch_dedup

        return datasketch_dedup(src, out, dups, 0.8, 128)
    raise SystemExit(f"unknown job {job}")


def main() -> None:
    job, *args = sys.argv[1:]
    start = time.perf_counter()
    result = _job(job, args)
    result["process_seconds"] = time.perf_counter() - start
    result["own_vmhwm_mb"] = vmhwm_mb()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
