"""One trigger check's outcome, shared by the checks (``triggers``, ``quality``) and the log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Check:
    name: str
    fired: bool
    detail: str
    numbers: dict[str, Any] = field(default_factory=dict)
