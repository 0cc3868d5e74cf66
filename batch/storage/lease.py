"""A lock object with a lease in a bucket: FileLock's interface where there is no kernel lock.

The lock object is created create-only and holds pid, host, run id and a lease expiry; a
background thread renews the lease while the holder lives, so a killed holder's lock expires
(after the lease, --s3-lease-seconds) instead of blocking forever; an expired lock is taken over
with If-Match, so of two contenders exactly one wins.

Fencing: the lease is lost, for good, when a renewal finds the lock object gone (404) or changed
(its ETag is not ours: someone took it over), or when no renewal succeeded for a whole lease
(the process was stopped, or the store did not answer) even if nobody has taken it over yet: a
contender may be doing so right now. `verify()` says so (LeaseLost, exit 6), and before saying
the lease holds it renews it with a conditional write, so the holder owns it for one more lease
from that moment; publishing checks it again before and after the write that makes a run visible
(`batch.storage.objects`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from typing import Any

from batch.core.errors import LeaseLost
from batch.storage.conditional import delete, is_conflict, is_gone, put, read
from batch.storage.location import ObjectPath

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0  # a killed holder's lock is free after at most this long (the default)
RETRY_SECONDS = 0.5  # between attempts of a blocking acquire
RELEASE_WAIT_SECONDS = 2.0  # release() waits at most this long for a renewal in flight
_CONFIG = {"lease_seconds": LEASE_SECONDS}


def set_lease_seconds(seconds: float) -> None:
    """Locks made from now on hold a lease of `seconds` (--s3-lease-seconds)."""
    _CONFIG["lease_seconds"] = seconds


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LeaseLock:
    """A lock object at `path` (create-only), held while its lease is renewed (FileLock's API)."""

    def __init__(self, path: ObjectPath, lease_seconds: float | None = None) -> None:
        self.path = path
        self.lease_seconds = lease_seconds or _CONFIG["lease_seconds"]
        self._etag: str | None = None
        self._valid_until = 0.0  # monotonic time our lease ends unless renewed
        self._holder: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()  # one conditional write of the lock object at a time
        self.lost: str | None = None  # why the lease was lost, once it was
        self._taken_over = False  # the lock object is gone or someone else's: never delete it

    @property
    def held(self) -> bool:
        """True from a successful acquire() until release()."""
        return self._etag is not None

    def _body(self) -> bytes:
        expires = _now() + dt.timedelta(seconds=self.lease_seconds)
        return json.dumps(
            {
                **self._holder,
                "lease_seconds": self.lease_seconds,
                "lease_expires_at": expires.isoformat(timespec="seconds"),
            }
        ).encode()

    def _write(self, etag: str | None) -> str:
        """One conditional PUT of our lease; it lasts a lease from before the PUT was sent."""
        sent = time.monotonic()
        new = put(self.path, self._body(), etag)
        self._valid_until = sent + self.lease_seconds
        return new

    def acquire(self, blocking: bool = True, holder: dict[str, Any] | None = None) -> bool:
        """Create the lock object, or take it over when its lease has expired; False when held."""
        self._holder = dict(holder or {})
        while True:
            if self._try():
                self.lost, self._taken_over = None, False
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
            self._etag = self._write(None)
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
            self._etag = self._write(etag)
        except OSError as exc:
            if is_conflict(exc) or is_gone(exc):
                return False  # another contender took it over (or freed it) first
            raise
        log.warning(
            "took over the lock %s: its holder's lease expired (%s)",
            self.path,
            _describe(_parse(data)),
        )
        return True

    def _try_again_once(self) -> bool:
        try:
            self._etag = self._write(None)
            return True
        except OSError as exc:
            if is_conflict(exc):
                return False
            raise

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_seconds / 4):
            with self._guard:
                if self._etag is None or self._stop.is_set():
                    return
                try:
                    self._renew_once()
                except LeaseLost:
                    log.warning("the lease is lost (%s); this run will not publish", self.lost)
                    return
                except OSError as exc:
                    log.warning("could not renew the lease of %s (%s); retrying", self.path, exc)

    def _renew_once(self) -> None:
        """Renew the lease now (hold _guard); LeaseLost when it is no longer ours."""
        if self.lost is None and time.monotonic() >= self._valid_until:
            self.lost = (
                f"no renewal of the lock {self.path} succeeded for {self.lease_seconds:g} s "
                "(the process was stopped or the store did not answer), so another process "
                "may have taken it over"
            )
        if self.lost is None:
            try:
                self._etag = self._write(self._etag)
            except OSError as exc:
                if is_conflict(exc):
                    self.lost = f"another process took over the lock {self.path}"
                elif is_gone(exc):
                    self.lost = f"the lock object {self.path} is gone"
                else:
                    raise
                self._taken_over = True
            else:
                return
        raise LeaseLost(
            f"lease lost: {self.lost}; this run published nothing — run it again "
            "(raise --s3-lease-seconds if the job is paused or the store is slow for that long)"
        )

    def verify(self) -> None:
        """LeaseLost (exit 6) unless the lease is still ours, which is renewed (conditionally)
        on the way: the holder then owns it for one more lease. StorageError when the store
        cannot say."""
        with self._guard:
            if self._etag is None and self.lost is None:
                self.lost = f"this process does not hold the lock {self.path}"
            self._renew_once()

    def still_held(self) -> None:
        """LeaseLost if the lease ran out since it was last written (no call to the store)."""
        with self._guard:
            if self.lost is not None or time.monotonic() >= self._valid_until:
                self._renew_once()  # raises: the lease is out

    def release(self) -> None:
        """Stop renewing and remove the lock object if it is still ours (conditional delete);
        never waits long: a lock left behind frees itself when its lease ends."""
        self._stop.set()
        got = self._guard.acquire(timeout=RELEASE_WAIT_SECONDS)
        try:
            etag, self._etag = self._etag, None
        finally:
            if got:
                self._guard.release()
        if self._thread is not None:
            self._thread.join(timeout=0.1 if not got else RELEASE_WAIT_SECONDS)
            self._thread = None
        if etag and not self._taken_over:
            try:
                delete(self.path, etag)  # only if it is still our version
            except OSError as exc:  # the lease runs out anyway
                if is_conflict(exc) or is_gone(exc):
                    return  # no longer ours: nothing of ours to remove
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
