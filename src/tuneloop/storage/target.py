"""Where a store lives on a server. Kept apart from ``pg.py`` so that naming a store does not
import the driver: every command imports the workspace, few of them talk to a server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class PgTarget:
    """Where a store lives on a server: conninfo (with the role), its schema, and the local
    path the embedded store would have (for names in messages and for fallback files)."""

    conninfo: str
    schema: str
    role: str
    local: Path
