"""Running the real `tuneloop` executable from tests, without the caller's workspace variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

TUNELOOP = Path(sys.executable).with_name("tuneloop")


def run(
    *args: Any, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "TUNELOOP_WORKSPACE"}
    return subprocess.run(
        [str(TUNELOOP), *map(str, args)],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        errors="replace",
        timeout=300,
        check=False,
    )
