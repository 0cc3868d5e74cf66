"""Conditional object writes: what S3 offers instead of rename, append and a kernel lock.

A PUT with If-None-Match: * creates an object only when it does not exist, and a PUT with
If-Match: <etag> replaces it only when nobody changed it since it was read. `update_bytes` /
`update_json` / `append_line` are read-modify-writes on these, retried on conflict, so two writers
never lose each other's update. The lease lock (`batch.storage.lease`) is built on them too.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from batch.storage.errors import StorageError, storage
from batch.storage.location import ObjectPath

log = logging.getLogger(__name__)

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


def is_gone(exc: BaseException) -> bool:
    """A conditional write found no object to match: it was deleted (or never existed)."""
    return isinstance(exc, FileNotFoundError) or _code(exc) in ("NoSuchKey", "404")


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
        with storage(path):
            found: tuple[bytes, str] = sync(s3.loop, get)
            return found
    except FileNotFoundError:
        return None


def put(path: ObjectPath, data: bytes, etag: str | None) -> str:
    """Write `data` only if the object is unchanged (etag) or, with etag None, does not exist yet.

    Returns the new etag; a lost condition raises FileExistsError or an OSError (see is_conflict).
    """
    bucket, key = path.key.split("/", 1)
    condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
    with storage(path):
        resp = path.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **condition)
    return str(resp["ETag"])


def delete(path: ObjectPath, etag: str) -> None:
    """Delete the object if it is still the version with `etag`."""
    bucket, key = path.key.split("/", 1)
    with storage(path):
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
