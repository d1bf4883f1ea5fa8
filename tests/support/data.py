"""Rows the tests feed a workspace: chats in the gateway's input shape, written as JSONL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuneloop.flows.ingest import ingest_file
from tuneloop.workspace import Workspace


def chats(prefix: str, n: int) -> list[dict[str, Any]]:
    """``n`` two-turn chats, one user each, ids and text marked by ``prefix``."""
    return [
        {
            "id": f"{prefix}{i}",
            "user_id": f"u{prefix}{i}",
            "messages": [
                {"role": "user", "content": f"please reset my password number {prefix} {i} now"},
                {"role": "assistant", "content": f'{{"intent": "reset_password", "n": {i}}}'},
            ],
        }
        for i in range(n)
    ]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def ingest(ws: Workspace, folder: Path, rows: list[dict[str, Any]], name: str) -> None:
    """Ingest ``rows`` through a file ``name`` in ``folder``, as ``tuneloop ingest`` does."""
    ingest_file(ws, write_jsonl(folder / name, rows))
