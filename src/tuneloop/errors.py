"""The exceptions tuneloop raises on purpose.

Every one of them becomes a single line on stderr and exit code 2 in the CLI, so each message
says where the problem is (file and line when there is one) and what to do about it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class TuneloopError(Exception):
    """Base class: a problem the user can fix, reported in one line."""

    exit_code = 2


class InputError(TuneloopError):
    """Bad input data: names the file, the line and the fix."""

    def __init__(self, path: Path | str, line: int | None, problem: str, fix: str) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}; {fix}")
        self.path = str(path)
        self.line = line
        self.problem = problem


class ConfigError(TuneloopError):
    """tuneloop.toml is invalid; the message lists every bad key at once."""


class WorkspaceError(TuneloopError):
    """No workspace where one is needed, or a workspace in a bad state."""


class EvalStoreError(TuneloopError):
    """A write the append-only eval store refused, or a broken hash chain."""


class EncryptionError(TuneloopError):
    """A store or file that cannot be opened with the key at hand (wrong, missing, unset)."""


class PrivacyBudgetError(TuneloopError):
    """A private round that would take some user past the configured ε budget."""


class TrainingGuardError(TuneloopError):
    """A private run whose first step left the adapter unchanged or touched the base model."""


class StorageError(TuneloopError):
    """A store's server cannot be reached, or its role may not do what was asked."""


class ExtraMissingError(TuneloopError):
    """A feature that is off by default, used without the extra that installs it."""


@contextmanager
def needs_extra(extra: str, feature: str) -> Iterator[None]:
    """Imports in the block come from ``tuneloop[extra]``: one that is not installed becomes one
    line naming the command that installs it.

    ``with needs_extra("privacy", "private training"): from opacus import ...``
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] == "tuneloop":
            raise
        raise ExtraMissingError(
            f"{feature} needs {exc.name}, which is not installed: pip install 'tuneloop[{extra}]'"
        ) from None
