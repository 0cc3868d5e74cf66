"""Atomic file writes: a temporary name in the same folder, fsync, then rename."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from batch.storage import fs


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write to a temporary name in the same folder, fsync, then rename over `path`.

    In object storage one PUT is already atomic: readers see the old object or the new one.
    """
    if fs.is_object(path):
        fs.path(path).write_bytes(data.encode() if isinstance(data, str) else data)
        return
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (nothing to do in object storage)."""
    if fs.is_object(path):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
