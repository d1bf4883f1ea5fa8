"""Options shared by the command groups of the ``tuneloop`` CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="workspace folder (else $TUNELOOP_WORKSPACE, else the nearest tuneloop.toml upward)",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]
TextFieldOpt = Annotated[
    str | None, typer.Option("--text-field", help="compare this field instead of the record's text")
]
MaxBytesOpt = Annotated[
    int, typer.Option("--max-record-bytes", help="refuse JSONL lines longer than this")
]
