"""Object-store failures as one readable sentence: StorageError, the classifier and its context."""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class StorageError(OSError):
    """An object store refused or could not be reached; its message is one readable sentence."""


# The object store found unreachable, and until when later calls fail at once instead of each
# waiting out its own deadline (the clean-up after a failed call must not multiply it).
_UNREACHABLE: dict[str, tuple[StorageError, float]] = {}
UNREACHABLE_SECONDS = 60.0


def reset_unreachable() -> None:
    """Forget that the object store was unreachable (new settings, new clients)."""
    _UNREACHABLE.clear()


def unreachable() -> StorageError | None:
    """The error of the object store found unreachable within the last UNREACHABLE_SECONDS."""
    found = _UNREACHABLE.get("store")
    if found is None or found[1] < time.monotonic():
        _UNREACHABLE.clear()
        return None
    return StorageError(found[0].errno, found[0].strerror)


def mark_unreachable(kind: str, where: str = "") -> StorageError:
    """Remember (and return) that the object store cannot be reached: calls fail at once now."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    down = StorageError(
        errno.EHOSTUNREACH,
        f"the object store{where}{f' (endpoint {endpoint})' if endpoint else ''} cannot be "
        f"reached ({kind}); check AWS_ENDPOINT_URL and the network",
    )
    _UNREACHABLE["store"] = (down, time.monotonic() + UNREACHABLE_SECONDS)
    return down


def _in_object_store(location: object) -> bool:
    return hasattr(location, "bucket") or bool(_URL_RE.match(str(location)))


@contextmanager
def storage(location: object) -> Iterator[None]:
    """Turn botocore/aiohttp/s3fs errors into a StorageError (an OSError) with a readable message.

    Only for an object-store location: a local file's OS error passes through unchanged (its
    own words say what is wrong; AWS credentials have nothing to do with it).
    """
    if location is not None and _in_object_store(location):
        down = unreachable()
        if down is not None:
            raise down
    try:
        yield
    except StorageError:
        raise
    except FileExistsError:
        raise  # a failed create-only write: callers decide
    except Exception as exc:
        if location is not None and not _in_object_store(location):
            raise
        classified = classify(exc, location)
        if classified is None:
            raise
        raise classified from None


def classify(exc: BaseException, location: object = None) -> StorageError | None:
    """The StorageError for an object-store failure, or None when `exc` is not one."""
    if isinstance(exc, StorageError):
        return exc
    where = f" at {location}" if location is not None else ""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    code = ""
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
    if code in ("PreconditionFailed", "ConditionalRequestConflict"):
        return None  # a conditional write lost: the caller retries or reports it
    kind = type(cause).__name__
    module = type(cause).__module__ or ""
    text = " ".join(str(exc).split())[:200]
    if kind in ("NoCredentialsError", "PartialCredentialsError"):
        return StorageError(
            errno.EACCES,
            f"no usable AWS credentials for the object store{where}"
            " (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)",
        )
    if kind in (
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ClientConnectorError",
        "ServerDisconnectedError",
    ) or isinstance(exc, (ConnectionError, TimeoutError)):
        return mark_unreachable(kind, where)
    if code in (
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "403",
        "InvalidToken",
        "ExpiredToken",
    ) or isinstance(exc, PermissionError):
        return StorageError(
            errno.EACCES,
            f"access denied{where} ({code or kind}): check "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and the "
            "bucket's policy",
        )
    if code == "NoSuchBucket" or "bucket does not exist" in text.lower():
        bucket = getattr(location, "bucket", "?")
        return StorageError(
            errno.ENOENT, f"the bucket {bucket!r} does not exist{where}; create it or fix the URL"
        )
    if isinstance(exc, FileNotFoundError):
        return None  # a missing object: the caller's own message says which
    if module.startswith(("botocore", "aiobotocore", "aiohttp", "s3fs")) or code:
        return StorageError(errno.EIO, f"the object store failed{where} ({code or kind}: {text})")
    return None
