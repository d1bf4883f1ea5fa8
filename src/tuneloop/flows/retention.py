"""Retention: served texts and ingest rejects are kept for a set number of days, then go.

``security.serving_log_days`` clears the text of older responses and of their feedback the way
an erasure does (the rows stay, so the canary judge and audits still count them);
``security.rejects_days`` deletes older ingest rejects files (``train/rejects/``), which hold
what could not be stored, redacted but still about someone. Both are 0 (keep) unless set. Each
``tuneloop cycle`` applies them before its first stage, and ``tuneloop retention`` does by hand.
A served answer is trained on only if an ingest reads it before it expires: keep the serving
log longer than the time between cycles.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tuneloop.state.serving_log import ServingLog
from tuneloop.workspace import Workspace

DAY_S = 86_400.0


@dataclass(frozen=True)
class RetentionReport:
    serving_log_days: int
    rejects_days: int
    serving_log: dict[str, int] = field(default_factory=dict)  # rows cleared, per table
    rejects_files: list[str] = field(default_factory=list)  # deleted, relative to the workspace

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def removed(self) -> bool:
        return bool(any(self.serving_log.values()) or self.rejects_files)

    def summary(self) -> str:
        if not (self.serving_log_days or self.rejects_days):
            return "retention: off (security.serving_log_days and rejects_days are 0)"
        parts = []
        if self.serving_log_days:
            n = self.serving_log.get("responses", 0)
            parts.append(f"{n} served response(s) older than {self.serving_log_days} days cleared")
        if self.rejects_days:
            parts.append(
                f"{len(self.rejects_files)} rejects file(s) older than {self.rejects_days} days "
                "deleted"
            )
        return "retention: " + ", ".join(parts)


def apply(ws: Workspace, now: float | None = None) -> RetentionReport:
    """Expire what the workspace's retention settings say is too old (as of ``now``)."""
    cfg, now = ws.config.security, time.time() if now is None else now
    report = RetentionReport(cfg.serving_log_days, cfg.rejects_days)
    if cfg.serving_log_days and ws.has_serving_log():
        log = ServingLog(ws.store("serving", "erasure"))
        try:
            report.serving_log.update(log.expire(now - cfg.serving_log_days * DAY_S))
        finally:
            log.close()
    if cfg.rejects_days and ws.rejects_dir.is_dir():
        cutoff = now - cfg.rejects_days * DAY_S
        for path in sorted(ws.rejects_dir.iterdir()):
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                report.rejects_files.append(path.relative_to(ws.root).as_posix())
    return report
