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
    MemoryError,
    pa.ArrowException,
    OSError,
    EOFError,
    ValueError,
    zlib.error,
)


# What running out of memory, or past what one Arrow array can hold, raises while a hostile
# file is read or scored (a value repeated until its text passes 2 GB, say).
_OVERFLOW_WORDS = ("overflow", "capacity", "out of memory", "malloc of size")


def is_memory_error(exc: BaseException) -> bool:
    """Whether `exc` says memory (or an Arrow array's size limit) ran out, not bad content."""
    if isinstance(exc, MemoryError | pa.ArrowMemoryError | pa.ArrowCapacityError):
        return True
    text = str(exc).lower()
    return isinstance(exc, pa.ArrowException) and any(w in text for w in _OVERFLOW_WORDS)


def memory_error(name: str, exc: BaseException, batch_bytes: int) -> InputError:
    """The InputError that names a file whose batches did not fit in memory (or in an array)."""
    return InputError(
        f"input {name!r} needs more memory than this process has while reading batches of "
        f"up to {batch_bytes >> 20} MB (the max_batch_bytes setting) ({type(exc).__name__}: "
        f"{short_error(exc)[:120]}); lower --max-batch-bytes, give the scorer more memory, "
        "or split the file"
    )


def read_error(name: str, exc: BaseException, batch_bytes: int | None = None) -> InputError:
    """The InputError that names a corrupt or unreadable input file (or one too big to read)."""
    if batch_bytes is not None and is_memory_error(exc):
        return memory_error(name, exc, batch_bytes)
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
