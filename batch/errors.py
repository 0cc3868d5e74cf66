"""Errors the jobs turn into exit codes (see CONTRACT.md); anything else is a bug (exit 1)."""
from __future__ import annotations


class BatchError(Exception):
    """A failure with a known cause; its message is one sentence saying what happened and how to fix it."""

    exit_code = 1


class ConfigError(BatchError):
    """Bad flag, environment value or cron expression."""

    exit_code = 2


class InputError(BatchError):
    """No input files, an unreadable or corrupt file, or no rooms column."""

    exit_code = 3


class ModelError(BatchError):
    """No such version or alias, an empty registry, or a model file that cannot be trusted."""

    exit_code = 4


class UnfitModel(ModelError):
    """A finite fit no better than predicting the training mean: not published."""

    def __init__(self, message: str, summary: dict | None = None) -> None:
        super().__init__(message)
        self.summary = summary or {}


class RejectBudgetExceeded(BatchError):
    """More rejected rows than --max-reject-fraction allows."""

    exit_code = 5

    def __init__(self, message: str, summary: dict | None = None) -> None:
        super().__init__(message)
        self.summary = summary or {}


class LockHeld(BatchError):
    """Another scoring run holds the output directory."""

    exit_code = 6
