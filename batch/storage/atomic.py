"""Atomic file writes (temp name, fsync, rename; one PUT in a bucket), by the location's store.

Deprecated: call `fs.write_atomic` / `fs.fsync_dir` directly. Kept only while batch.model.registry,
batch.ops.report and batch.ops.history still import it; delete it with their last import.
"""

from __future__ import annotations

from batch.storage import fs
from batch.storage.location import Location


def write_atomic(path: Location, data: bytes | str) -> None:
    """Replace `path` so that a reader sees the old content or the new one, never a mix."""
    fs.write_atomic(path, data)


def fsync_dir(path: Location) -> None:
    """Make a rename inside folder `path` durable (nothing to do in object storage)."""
    fs.fsync_dir(path)
