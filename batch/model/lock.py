"""The registry lock (one command changing the registry at a time) and its OS-error guard."""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from batch.core.errors import LockHeld
from batch.model.layout import LOCK_FILE, location_error
from batch.model.moves import actor
from batch.storage import fs
from batch.storage.location import Location
from batch.storage.locks import describe_holder
from batch.storage.store import Lock

log = logging.getLogger(__name__)

DEFAULT_LOCK_TIMEOUT = 60.0  # seconds; the registry_lock_timeout setting
LOCK_POLL_SECONDS = 0.2


@contextmanager
def writing(root: Location, outcome: str = "nothing was published") -> Iterator[None]:
    """Turn an OS error while changing the registry into the one-sentence EnvironmentFault."""
    try:
        yield
    except OSError as exc:
        raise location_error(root, exc, outcome) from None


@contextmanager
def registry_lock(root: Location, timeout: float) -> Iterator[None]:
    """The registry lock; waits up to `timeout` for a holder (logging who), then LockHeld."""
    lock = fs.lock(root / LOCK_FILE)
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "actor": actor(),
        "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    deadline = time.monotonic() + timeout
    announced = False
    while not _try_lock(root, lock, me):
        who = describe_holder(lock.holder())
        if time.monotonic() >= deadline:
            raise LockHeld(
                f"the model registry {str(root)!r} is still locked by {who} after "
                f"{timeout:g} s, so nothing was changed; wait for that command to "
                "finish (or stop it) and run again, or raise registry_lock_timeout "
                "(--registry-lock-timeout / BATCH_REGISTRY_LOCK_TIMEOUT)"
            )
        if not announced:
            log.warning(
                "the model registry %s is locked by %s; waiting up to %g s for it",
                root,
                who,
                timeout,
            )
            announced = True
        time.sleep(min(LOCK_POLL_SECONDS, max(deadline - time.monotonic(), 0.0)))
    try:
        yield
    finally:
        lock.release()


def _try_lock(root: Location, lock: Lock, me: dict[str, object]) -> bool:
    """One attempt at the lock, making the registry folder first."""
    with writing(root):
        if root.exists() and not root.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        root.mkdir(parents=True, exist_ok=True)
        return bool(lock.acquire(blocking=False, holder=me))
