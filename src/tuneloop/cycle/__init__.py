"""The loop: one cycle runs collect → ingest → curate → train → gate → release, resumably."""

from tuneloop.cycle.run import run_cycle, statuses
from tuneloop.cycle.state import STAGES, Cycle, CycleBusyError, StageResult

__all__ = ["STAGES", "Cycle", "CycleBusyError", "StageResult", "run_cycle", "statuses"]
