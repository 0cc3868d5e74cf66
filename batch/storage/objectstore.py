"""What object storage cannot do the way a disk does: locks with a lease, conditional updates, publishing.

S3 has no rename, no append and no kernel lock, but it has conditional writes: a PUT with
If-None-Match: * creates an object only when it does not exist, and a PUT with If-Match: <etag>
replaces it only when nobody changed it since it was read. On these:

- `LeaseLock`: a lock object created create-only, holding pid, host, run id and a lease expiry; a
  background thread renews the lease while the holder lives, so a killed holder's lock expires
  (after LEASE_SECONDS) instead of blocking forever; an expired lock is taken over with If-Match,
  so of two contenders exactly one wins.
- `update_bytes` / `update_json` / `append_line`: read-modify-write with If-Match (If-None-Match
  for a new object), retried on conflict, so two writers never lose each other's update.
- `publish_tree`: copy a staged folder into its final prefix, the marker object last, so a
  reader that honours the marker never sees a partial folder.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from batch.storage import fs
from batch.storage.fs import Location, ObjectPath, StorageError

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0  # a killed holder's lock is free after at most this long
RENEW_EVERY = LEASE_SECONDS / 4
RETRY_SECONDS = 0.5  # between attempts of a blocking acquire
MAX_CONFLICTS = 50  # conditional update attempts before giving up


def _code(exc: BaseException) -> str:
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def is_conflict(exc: BaseException) -> bool:
    """A conditional write lost: the object exists, or changed since it was read."""
    return isinstance(exc, FileExistsError) or _code(exc) in (
        "PreconditionFailed",
        "ConditionalRequestConflict",
        "412",
        "409",
    )


def read(path: ObjectPath) -> tuple[bytes, str] | None:
    """(content, etag) read in one GET, or None when the object does not exist."""
    s3 = path.fs
    bucket, key = path.key.split("/", 1)

    async def get() -> tuple[bytes, str]:
        resp = await s3._call_s3("get_object", Bucket=bucket, Key=key)
        body = resp["Body"]
        try:
            data = await body.read()
        finally:
            body.close()
        return data, resp["ETag"]

    from fsspec.asyn import sync

    try:
        with fs.storage(path):
            return sync(s3.loop, get)
    except FileNotFoundError:
        return None


def put(path: ObjectPath, data: bytes, etag: str | None) -> str:
    """Write `data` only if the object is unchanged (etag) or, with etag None, does not exist yet.

    Returns the new etag; a lost condition raises FileExistsError or an OSError (see is_conflict).
    """
    bucket, key = path.key.split("/", 1)
    condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
    with fs.storage(path):
        resp = path.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **condition)
    return resp["ETag"]


def delete(path: ObjectPath, etag: str) -> None:
    """Delete the object if it is still the version with `etag`."""
    bucket, key = path.key.split("/", 1)
    with fs.storage(path):
        path.fs.call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=etag)


def update_bytes(path: ObjectPath, change: Callable[[bytes | None], bytes]) -> bytes:
    """Replace the object with change(current content or None), retrying when another writer won."""
    for attempt in range(MAX_CONFLICTS):
        current = read(path)
        data = change(current[0] if current else None)
        try:
            put(path, data, current[1] if current else None)
            return data
        except OSError as exc:
            if not is_conflict(exc):
                raise
            log.debug("%s changed while it was updated; trying again", path)
            time.sleep(random.uniform(0.01, 0.05 * (attempt + 1)))
    raise StorageError(
        f"{path} kept changing under {MAX_CONFLICTS} attempts to update it; "
        "too many writers at once, try again"
    )


def update_json(path: ObjectPath, change: Callable[[Any], Any], default: Any) -> Any:
    """update_bytes for a JSON document (`default` when it does not exist yet)."""
    result: list[Any] = []

    def apply(current: bytes | None) -> bytes:
        value = change(json.loads(current) if current else default)
        result[:] = [value]
        return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()

    update_bytes(path, apply)
    return result[0]


def append_line(path: ObjectPath, line: str) -> None:
    """Append one line (read, add, conditional write): concurrent appends are never lost."""

    def add(current: bytes | None) -> bytes:
        text = (current or b"").decode()
        if text and not text.endswith("\n"):
            text += "\n"
        return (text + line.rstrip("\n") + "\n").encode()

    update_bytes(path, add)


def publish_tree(
    staged: Location,
    final: ObjectPath,
    marker: str,
    marker_data: bytes,
    include: Callable[[str], bool] = lambda name: True,
) -> None:
    """Copy the files under `staged` to `final` (server-side, or uploaded from a local folder),
    then write the `marker` object last, then remove `staged`.

    A reader that honours the marker never sees a partial folder; a copy killed half-way leaves
    a prefix without its marker, which the next writer removes (remove_unmarked).
    """
    sources = [
        f
        for f in fs.files_under(staged)
        if f.name != marker and include(_relative(f, staged).split("/", 1)[0])
    ]
    targets = [final / _relative(f, staged) for f in sources]
    s3 = final.fs
    with fs.storage(final):
        if sources and isinstance(staged, ObjectPath):
            s3.copy([s.key for s in sources], [t.key for t in targets])
        elif sources:
            s3.put([str(s) for s in sources], [t.key for t in targets])
    (final / marker).write_bytes(marker_data)
    fs.rmtree(staged, ignore_errors=True)


def _relative(child: Location, root: Location) -> str:
    return str(child)[len(str(root)) :].lstrip("/")


def remove_unmarked(folder: ObjectPath, marker: str) -> bool:
    """Remove a prefix that has no marker (a publish killed half-way); True when removed."""
    if (folder / marker).exists():
        return False
    if folder.is_dir():
        log.info("removing %s left incomplete by a publish that did not finish", folder)
        fs.rmtree(folder, ignore_errors=True)
        return True
    return False


# -- the lock with a lease -----------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LeaseLock:
    """A lock object at `path` (create-only), held while its lease is renewed; FileLock's interface."""

    def __init__(self, path: ObjectPath, lease_seconds: float = LEASE_SECONDS) -> None:
        self.path = path
        self.lease_seconds = lease_seconds
        self._etag: str | None = None
        self._holder: dict = {}
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

    def acquire(self, blocking: bool = True, holder: dict | None = None) -> bool:
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

    def holder(self) -> dict:
        current = read(self.path)
        return _parse(current[0]) if current else {}

    def __enter__(self) -> LeaseLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _parse(data: bytes) -> dict:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _expired(data: bytes) -> bool:
    """True when the lock's lease has run out (a lock object that cannot be read counts as expired)."""
    try:
        expires = dt.datetime.fromisoformat(_parse(data)["lease_expires_at"])
    except (KeyError, TypeError, ValueError):
        return True
    return expires <= _now()


def _describe(holder: dict) -> str:
    return (
        f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, run "
        f"{holder.get('run_id', '?')}, lease until {holder.get('lease_expires_at', '?')}"
    )
