"""Options shared by the command groups of the ``tuneloop`` CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuneloop.errors import ConfigError

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="workspace folder (else $TUNELOOP_WORKSPACE, else the nearest tuneloop.toml upward)",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]
LogFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        help="log lines on stderr: text | json, one object a line (serve.log_format)",
    ),
]
TextFieldOpt = Annotated[
    str | None, typer.Option("--text-field", help="compare this field instead of the record's text")
]
MaxBytesOpt = Annotated[
    int, typer.Option("--max-record-bytes", help="refuse JSONL lines longer than this")
]
ColumnsOpt = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="CSV/TSV input: which column holds each field, e.g. "
        "'prompt=question,completion=answer,user_id=customer' (default: the header's names)",
    ),
]


def parse_columns(text: str | None) -> dict[str, str]:
    """``field=column,...`` as a mapping; one line naming the fix when malformed."""
    if not text:
        return {}
    pairs = [part.partition("=") for part in text.split(",") if part.strip()]
    bad = [f"{a}{sep}{b}" for a, sep, b in pairs if not (sep and a.strip() and b.strip())]
    if bad:
        raise ConfigError(f"--columns {text!r}: {', '.join(bad)} is not field=column; write "
                          "e.g. prompt=question,completion=answer")  # fmt: skip
    return {a.strip(): b.strip() for a, _, b in pairs}
