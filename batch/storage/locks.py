"""Advisory OS file locks (flock): held for a process's life, freed by the kernel when it dies."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from batch.storage import links


class FileLock:
    """An exclusive flock on `path`; the holder writes who it is into the file for whoever loses.

    The lock file is never opened through a link; with `guards_folder` the lock also guards its
    folder, which then may hold no symbolic link at all (the output folder, the registry): one
    planted there is refused (`links.PlantedLink`) before anything is locked or written.
    """

    def __init__(self, path: Path, guards_folder: bool = False) -> None:
        self.path = Path(path)
        self.guards_folder = guards_folder
        self._fd: int | None = None

    def acquire(self, blocking: bool = True, holder: dict[str, Any] | None = None) -> bool:
        links.make_dirs(self.path.parent)
        if self.guards_folder:
            links.refuse_links_in(self.path.parent)
        fd = links.open_file(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        if holder is not None:
            data = json.dumps(holder).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            os.fsync(fd)
        return True

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def verify(self) -> None:
        """Nothing to check: a kernel lock cannot lapse while its holder lives."""

    def holder(self) -> dict[str, Any]:
        """What the current holder wrote (may be empty for a moment right after it locked)."""
        for _ in range(20):
            try:
                text = _read(self.path)
            except OSError:
                return {}
            if text.strip():
                try:
                    found = json.loads(text)
                    return found if isinstance(found, dict) else {}
                except ValueError:
                    pass
            time.sleep(0.01)
        return {}

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read(path: Path) -> str:
    """The lock file's text, read without following a link."""
    fd = links.open_file(path, os.O_RDONLY)
    try:
        return os.read(fd, 65536).decode("utf-8", "replace")
    finally:
        os.close(fd)


def is_abandoned(lock_path: Path) -> bool:
    """True when nobody holds the lock at `lock_path` (its owner finished or died)."""
    lock = FileLock(lock_path)
    if lock.acquire(blocking=False):
        lock.release()
        return True
    return False


def describe_holder(who: dict[str, Any]) -> str:
    """'pid 12 on host (root@host, started ...)' from what a lock holder wrote, or vaguer."""
    if not who:
        return "another process"
    text = f"pid {who.get('pid', '?')} on {who.get('host', '?')}"
    since = who.get("since") or who.get("started_at")
    lease = who.get("lease_expires_at")  # object storage: the lock frees itself then
    extra = ", ".join(
        str(v)
        for v in (who.get("actor"), since and f"started {since}", lease and f"lease until {lease}")
        if v
    )
    return f"{text} ({extra})" if extra else text
