"""Two CPU processes (torchrun, gloo) train the same adapter as one process with the same
global batch: gradients are summed across ranks, each rank's loss scaled by the whole step."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tuneloop.train.adapter import adapter_weights

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd: list[str]) -> None:
    # tests/ for the worker's `support` import, ahead of the caller's path (made absolute: the
    # worker runs in tests/), so that it imports the same tuneloop as the test
    given = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    path = [str(HERE), *(str(Path(p).resolve()) for p in given if p)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, env=env, cwd=HERE, capture_output=True, timeout=600)


def test_two_processes_match_one(tmp_path: Path, tiny_base: Path) -> None:
    base = str(tiny_base)
    torchrun = Path(sys.executable).with_name("torchrun")
    worker = str(HERE / "ddp_worker.py")
    port = f"--master_port={free_port()}"
    run([str(torchrun), "--nproc_per_node=2", port, "--master_addr=127.0.0.1", worker, base,
         str(tmp_path / "ddp"), "1"])  # fmt: skip
    run([sys.executable, str(HERE / "ddp_worker.py"), base, str(tmp_path / "one"), "2"])
    a = adapter_weights(tmp_path / "ddp" / "best")
    b = adapter_weights(tmp_path / "one" / "best")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-5
    assert (tmp_path / "ddp" / "checkpoints").exists()
