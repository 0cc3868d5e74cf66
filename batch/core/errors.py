"""Errors the jobs turn into exit codes, and the one table of what each exit code means.

Anything that is not a BatchError is a bug and exits 1 with its traceback.
"""

from __future__ import annotations

import errno
from typing import Any

# Every exit code of the jobs, with its meaning: --help texts, the scheduler's log and the
# README's table all say what this table says.
EXIT_CODES = {
    0: "success (also: nothing new to score)",
    1: "unexpected failure (a bug)",
    2: "usage or configuration error",
    3: "input problem",
    4: "model problem",
    5: "reject budget exceeded",
    6: "locked by another process (a scoring run holds the output directory, a second "
    "scheduler runs on it, or the model registry stayed locked past registry_lock_timeout)",
    7: "environment problem (output or registry location unusable, Dask cluster lost)",
    8: "drift: the input differs markedly from the training data and --on-drift fail was asked",
    130: "interrupted (SIGINT or SIGTERM); nothing published",
}


def exit_codes_help(codes: tuple[int, ...] = tuple(EXIT_CODES)) -> str:
    """'Exit codes: 0 success ..., 2 usage ...' for a --help text."""
    return "Exit codes: " + "; ".join(f"{c} {EXIT_CODES[c]}" for c in codes) + "."


class BatchError(Exception):
    """A failure with a known cause; its message is one sentence: what happened, how to fix it."""

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

    def __init__(self, message: str, summary: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.summary = summary or {}


class RunRefused(BatchError):
    """A run that was scored but must not be published; its diagnosis went to failed/<run_id>/."""

    def __init__(self, message: str, summary: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.summary = summary or {}

    def __reduce__(
        self,
    ) -> tuple[
        type[RunRefused], tuple[str, dict[str, Any]]
    ]:  # keep the summary when pickled (Dask sends errors between processes)
        return (type(self), (str(self), self.summary))


class RejectBudgetExceeded(RunRefused):
    """More rejected rows than --max-reject-fraction allows (in the run, or in one file)."""

    exit_code = 5


class DriftDetected(RunRefused):
    """The input differs markedly from the training data, and --on-drift fail was asked for."""

    exit_code = 8


class LockHeld(BatchError):
    """Another process holds a lock we need: the output folder's, scheduler's or registry's."""

    exit_code = 6


class LeaseLost(LockHeld):
    """The object-store lock's lease lapsed, or another process took the lock over: a run that
    no longer holds the lock never publishes (exit 6, like any lock another process holds)."""


class EnvironmentFault(BatchError):
    """The machine failed us: an unusable output or registry location, a lost Dask cluster."""

    exit_code = 7


class ClusterLost(EnvironmentFault):
    """A Dask worker or the scheduler went away while the run needed it."""


def location_fault(
    what: str, path: object, flag: str, exc: OSError, outcome: str = "nothing was published"
) -> EnvironmentFault:
    """The one sentence (exit 7) for a location that cannot be used: full, read-only, a file...

    `what` names the location ("output location", "model registry location"), `flag` the
    setting that moves it; the OS's reason and the offending file are quoted.
    """
    reason = exc.strerror or " ".join(str(exc).split())
    code = exc.errno or next(
        (c for c in errno.errorcode if f"[errno {c}]" in str(exc).lower()), None
    )
    hint = {
        errno.ENOSPC: f"free some space there, or set {flag} to another directory",
        errno.EFBIG: f"raise the file size limit (ulimit -f) or free space, or set {flag} "
        "to another directory",
        errno.EROFS: f"mount it writable, or set {flag} to a writable directory",
        errno.EACCES: f"give this user write permission there, or set {flag} elsewhere",
        errno.EPERM: f"give this user write permission there, or set {flag} elsewhere",
        errno.ENOTDIR: f"point {flag} at a directory",
        errno.EEXIST: f"point {flag} at a directory",
        errno.ELOOP: f"remove that link (the jobs never write through a link they did not "
        f"make), or set {flag} to another directory",
    }.get(code or 0, f"check the location, or set {flag} to a writable directory")
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return EnvironmentFault(
        f"the {what} {str(path)!r} cannot be used: {reason}{where}; {outcome} — {hint}"
    )
