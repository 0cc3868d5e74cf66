"""The one read-error classifier: both engines name a corrupt or unreadable input the same way."""

from __future__ import annotations

import zlib

import pyarrow as pa

from batch.core.errors import InputError
from batch.storage import fs

# What reading a file's content can raise when the content (or its reading) is at fault, not our
# code: Arrow's parse errors, I/O errors, a truncated stream, a bad value, and a damaged gzip
# member (zlib.error, which is none of the others). UnicodeDecodeError is a ValueError. Cutting
# and streaming a file (batch.io.inputs) catch exactly these, so no damaged file escapes as a
# traceback.
READ_ERRORS: tuple[type[BaseException], ...] = (
    pa.ArrowException,
    OSError,
    EOFError,
    ValueError,
    zlib.error,
)


def read_error(name: str, exc: BaseException) -> InputError:
    """The InputError that names a corrupt or unreadable input file."""
    stored = fs.classify(exc, name)
    if stored is not None:  # the store refused or went away: not the file's fault
        return InputError(f"cannot read input {name!r}: {stored}")
    return InputError(
        f"input {name!r} is corrupt or unreadable ({type(exc).__name__}: "
        f"{short_error(exc)}); fix or remove the file and run again"
    )


def short_error(exc: BaseException) -> str:
    """An exception's message on one line, cut to a readable length."""
    text = " ".join(str(exc).split())
    return text[:300]
