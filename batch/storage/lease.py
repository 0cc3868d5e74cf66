"""A lock object with a lease in a bucket: FileLock's interface where there is no kernel lock.

The lock object is created create-only and holds pid, host, run id and a lease expiry; a
background thread renews the lease while the holder lives, so a killed holder's lock expires
(after LEASE_SECONDS) instead of blocking forever; an expired lock is taken over with If-Match,
so of two contenders exactly one wins.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from typing import Any

from batch.storage.conditional import delete, is_conflict, put, read
from batch.storage.errors import StorageError
from batch.storage.location import ObjectPath

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0  # a killed holder's lock is free after at most this long
RENEW_EVERY = LEASE_SECONDS / 4
RETRY_SECONDS = 0.5  # between attempts of a blocking acquire


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LeaseLock:
    """A lock object at `path` (create-only), held while its lease is renewed (FileLock's API)."""

    def __init__(self, path: ObjectPath, lease_seconds: float = LEASE_SECONDS) -> None:
        self.path = path
        self.lease_seconds = lease_seconds
        self._etag: str | None = None
        self._holder: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self.lost = False

    def _body(self) -> bytes:
        expires = _now() + dt.timedelta(seconds=self.lease_seconds)
        return json.dumps(
            {
                **self._holder,
                "lease_seconds": self.lease_seconds,
                "lease_expires_at": expires.isoformat(timespec="seconds"),
            }
        ).encode()

    def acquire(self, blocking: bool = True, holder: dict[str, Any] | None = None) -> bool:
        """Create the lock object, or take it over when its lease has expired; False when held."""
        self._holder = dict(holder or {})
        while True:
            if self._try():
                self.lost = False
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._renew, daemon=True, name=f"lease {self.path}"
                )
                self._thread.start()
                return True
            if not blocking:
                return False
            time.sleep(RETRY_SECONDS)

    def _try(self) -> bool:
        try:
            self._etag = put(self.path, self._body(), None)
            return True
        except OSError as exc:
            if not is_conflict(exc):
                raise
        current = read(self.path)
        if current is None:
            return self._try_again_once()
        data, etag = current
        if not _expired(data):
            return False
        try:
            self._etag = put(self.path, self._body(), etag)
        except OSError as exc:
            if is_conflict(exc):
                return False  # another contender took it over first
            raise
        log.warning(
            "took over the lock %s: its holder's lease expired (%s)",
            self.path,
            _describe(_parse(data)),
        )
        return True

    def _try_again_once(self) -> bool:
        try:
            self._etag = put(self.path, self._body(), None)
            return True
        except OSError as exc:
            if is_conflict(exc):
                return False
            raise

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_seconds / 4):
            with self._guard:
                if self._etag is None:
                    return
                try:
                    self._etag = put(self.path, self._body(), self._etag)
                except OSError as exc:
                    if is_conflict(exc):
                        self.lost = True
                        log.error(
                            "lost the lock %s: another process took it over (this "
                            "process's lease lapsed); this run will not publish",
                            self.path,
                        )
                        return
                    log.warning("could not renew the lease of %s (%s); retrying", self.path, exc)

    def verify(self) -> None:
        """OSError when the lock was taken over (the lease lapsed): do not publish then."""
        if self.lost or self._etag is None:
            raise StorageError(
                f"the lock {self.path} was taken over by another process after "
                "this run's lease lapsed"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self._guard:
            etag, self._etag = self._etag, None
        if etag and not self.lost:
            try:
                delete(self.path, etag)
            except OSError as exc:  # the lease runs out anyway
                log.warning(
                    "could not remove the lock %s (%s); it expires within %.0f s",
                    self.path,
                    exc,
                    self.lease_seconds,
                )

    def holder(self) -> dict[str, Any]:
        current = read(self.path)
        return _parse(current[0]) if current else {}

    def __enter__(self) -> LeaseLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _parse(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _expired(data: bytes) -> bool:
    """True when the lock's lease has run out (a lock object that cannot be read has expired)."""
    try:
        expires = dt.datetime.fromisoformat(_parse(data)["lease_expires_at"])
    except (KeyError, TypeError, ValueError):
        return True
    return expires <= _now()


def _describe(holder: dict[str, Any]) -> str:
    return (
        f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, run "
        f"{holder.get('run_id', '?')}, lease until {holder.get('lease_expires_at', '?')}"
    )
