"""Locations: a local path stays a pathlib.Path, an s3://bucket/key URL becomes an ObjectPath.

A location setting (--input, --output-dir, --models-dir, --data, --metrics-dir) is parsed once,
by `parse()`, where settings are read. An `ObjectPath` offers the part of the pathlib interface
the job uses (`/`, name, parent, exists, is_dir, iterdir, read_text, write_bytes, open, ...) on top
of fsspec's S3 filesystem (s3fs). What differs between the two kinds beyond that lives in the
stores (`batch.storage.store`), and nowhere else.

Credentials and the endpoint come the standard AWS way (botocore): AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE and the config files, AWS_DEFAULT_REGION,
AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) for S3-compatible stores. Nothing here logs them.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from batch.core import interrupts
from batch.storage.errors import classify, mark_unreachable, reset_unreachable, storage, unreachable

SCHEMES = ("s3",)
URL_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Multipart part size and read-ahead of S3 files: every open writer buffers one part, so a sink
# (three writers) holds at most 3 x 8 MB; 8 MB x 10,000 parts allows objects up to 80 GB.
BLOCK_BYTES = 8 << 20
# Bounded waits: a wrong endpoint fails in seconds rather than after botocore's minute-long
# default connect timeout. botocore makes at most ATTEMPTS tries of a call ("standard" mode:
# throttling, 5xx and connection errors), each with the deadline to connect and to read; s3fs's
# own retry loop is off (S3FS_RETRIES), or the two would multiply into minutes per call.
ATTEMPTS = 3
S3FS_RETRIES = 1
_DEADLINE: dict[str, float] = {"seconds": 30.0, "attempts": ATTEMPTS}


def _client_config() -> dict[str, Any]:
    """botocore's Config for a new client (a fresh dict: botocore rewrites what it is given)."""
    seconds = _DEADLINE["seconds"]
    return {
        "connect_timeout": seconds,
        "read_timeout": seconds,
        "retries": {"max_attempts": int(_DEADLINE["attempts"]), "mode": "standard"},
    }


# After a stop signal the clean-up (removing the staged run, releasing the lock, the outcome
# log) gets this deadline per call and one attempt: a stop must end a run within 10 s.
STOPPING_DEADLINE = 1.0


def is_url(text: object) -> bool:
    """True for 'scheme://...' text."""
    return isinstance(text, str) and URL_RE.match(text) is not None


def parse(value: str | os.PathLike[str] | ObjectPath) -> Location:
    """The location named by a setting: an ObjectPath for s3:// URLs, else a pathlib.Path.

    ValueError for a URL scheme other than s3:// (pydantic turns it into a usage error).
    """
    if isinstance(value, (Path, ObjectPath)):
        return value
    text = os.fspath(value) if not isinstance(value, str) else value
    match = URL_RE.match(text)
    if match:
        if match.group(1).lower() not in SCHEMES:
            raise ValueError(
                f"unsupported URL scheme {match.group(1)!r} in {text!r}: use a "
                "local path or an s3://bucket/prefix URL"
            )
        return ObjectPath(text)
    return Path(text)


_FILESYSTEMS: dict[int, Any] = {}


def set_deadline(seconds: float, attempts: int = ATTEMPTS) -> None:
    """Every object-store call from now on connects, and gets each answer, within `seconds`
    (--s3-timeout-s), in at most `attempts` tries; the process's client is rebuilt with it."""
    _DEADLINE.update(seconds=seconds, attempts=attempts)
    reset_unreachable()
    _FILESYSTEMS.clear()


def call_deadline() -> float:
    """The longest one object-store call may take in all: every attempt at its deadline, plus
    a second of back-off each; past it the call is cut (a store that drips its answer too)."""
    return _DEADLINE["attempts"] * (_DEADLINE["seconds"] + 1)


def stopping() -> None:
    """A stop signal arrived: the clean-up that follows gets short deadlines and one attempt,
    calls in flight included (their clients read call_deadline() per call)."""
    _DEADLINE.update(seconds=min(_DEADLINE["seconds"], STOPPING_DEADLINE), attempts=1)
    _FILESYSTEMS.clear()


async def _bounded(call: Coroutine[Any, Any, Any]) -> Any:
    """One object-store call, cut at call_deadline(); none at all while the store is known to
    be unreachable (errors.unreachable), so a clean-up never waits out a dead store again."""
    down = unreachable()
    if down is not None:
        call.close()
        raise down
    limit = call_deadline()
    try:
        return await asyncio.wait_for(call, limit)
    except TimeoutError:
        raise mark_unreachable(f"no answer within {limit:g} s") from None
    except Exception as exc:
        classify(exc)  # an unreachable store is remembered
        raise


_BOUNDED: list[type] = []


def _filesystem_class() -> type:
    """s3fs's S3FileSystem with every call bounded (files, pyarrow's view and listings too:
    they all go through `_call_s3`)."""
    if not _BOUNDED:
        import s3fs
        from fsspec.asyn import sync_wrapper

        class BoundedS3FileSystem(s3fs.S3FileSystem):  # type: ignore[misc]
            async def _call_s3(self, method: Any, *akwarglist: Any, **kwargs: Any) -> Any:
                return await _bounded(super()._call_s3(method, *akwarglist, **kwargs))

            call_s3 = sync_wrapper(_call_s3)  # the base class's binds the unbounded one

        _BOUNDED.append(BoundedS3FileSystem)
    return _BOUNDED[0]


interrupts.on_stop(stopping)


def s3() -> Any:
    """This process's s3fs filesystem (one per process: Dask workers and forks make their own).

    Listings are never cached: other processes (another run, a trainer) change the bucket.
    """
    pid = os.getpid()
    fs = _FILESYSTEMS.get(pid)
    if fs is None:
        fs = _filesystem_class()(
            use_listings_cache=False,
            skip_instance_cache=True,
            default_block_size=BLOCK_BYTES,
            config_kwargs=_client_config(),
        )
        fs.retries = S3FS_RETRIES  # a class attribute, not an argument
        _FILESYSTEMS.clear()
        _FILESYSTEMS[pid] = fs
    return fs


@dataclass(frozen=True)
class ObjectStat:
    """What os.stat gives for a file, for an object: its size and last-modified time."""

    st_size: int
    st_mtime_ns: int
    etag: str = ""


class ObjectPath:
    """An s3://bucket/key location with the pathlib methods the job uses (no __fspath__, on purpose:
    code that would open it as a local file fails loudly instead of writing beside the job)."""

    __slots__ = ("url", "_kind")

    def __init__(self, url: str, kind: str | None = None) -> None:
        scheme, rest = url.split("://", 1)
        self.url = f"{scheme.lower()}://{re.sub('/+', '/', rest).strip('/')}"
        self._kind = kind  # 'file' or 'directory' when known from a listing

    # -- pure path operations --
    @property
    def key(self) -> str:
        """'bucket/key' as fsspec names it."""
        return self.url.split("://", 1)[1]

    @property
    def bucket(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1] if "/" in self.key else ""

    @property
    def suffix(self) -> str:
        return os.path.splitext(self.name)[1]

    @property
    def parent(self) -> ObjectPath:
        return ObjectPath(self.url.rsplit("/", 1)[0]) if "/" in self.key else self

    def __truediv__(self, other: str) -> ObjectPath:
        return ObjectPath(f"{self.url}/{other}")

    def with_name(self, name: str) -> ObjectPath:
        return self.parent / name

    def with_suffix(self, suffix: str) -> ObjectPath:
        return self.with_name(os.path.splitext(self.name)[0] + suffix)

    def expanduser(self) -> ObjectPath:
        return self

    def resolve(self) -> ObjectPath:
        return self

    absolute = resolve

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"ObjectPath({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectPath) and other.url == self.url

    def __lt__(self, other: ObjectPath) -> bool:
        return self.url < other.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __reduce__(self) -> tuple[type[ObjectPath], tuple[str]]:
        return (ObjectPath, (self.url,))

    # -- the store --
    @property
    def fs(self) -> Any:
        return s3()

    def exists(self) -> bool:
        with storage(self):
            return bool(self.fs.exists(self.key))

    def is_dir(self) -> bool:
        """True when objects exist under this prefix (a prefix has no existence of its own)."""
        if self._kind is not None:
            return self._kind == "directory"
        with storage(self):
            return bool(self.fs.isdir(self.key))

    def is_file(self) -> bool:
        if self._kind is not None:
            return self._kind == "file"
        with storage(self):
            return bool(self.fs.isfile(self.key))

    def iterdir(self) -> Iterator[ObjectPath]:
        with storage(self):
            entries = self.fs.ls(self.key, detail=True)
        for e in entries:
            if e["name"].rstrip("/") != self.key:
                yield ObjectPath(f"s3://{e['name'].rstrip('/')}", e.get("type"))

    def glob(self, pattern: str) -> Iterator[ObjectPath]:
        with storage(self):
            found = self.fs.glob(f"{self.key}/{pattern}", detail=True)
        for name, info in sorted(found.items()):
            yield ObjectPath(f"s3://{name}", info.get("type"))

    def stat(self) -> ObjectStat:
        with storage(self):
            info = self.fs.info(self.key)
        modified = info.get("LastModified")
        mtime = int(modified.timestamp() * 1e9) if modified is not None else 0
        return ObjectStat(int(info.get("size") or 0), mtime, str(info.get("ETag", "")))

    def open(self, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        with storage(self):
            opened: IO[Any] = self.fs.open(self.key, mode, **kwargs)
        return opened

    def read_bytes(self) -> bytes:
        with storage(self):
            return bytes(self.fs.cat_file(self.key))

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        """One PUT: readers see the old object or the new one, never a mix."""
        with storage(self):
            self.fs.pipe_file(self.key, data)
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: a prefix exists once an object is under it (buckets are never created)."""
        del parents, exist_ok  # pathlib's signature, nothing to do with them here

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            with storage(self):
                self.fs.rm_file(self.key)
        except FileNotFoundError:
            if not missing_ok:
                raise


Location = Path | ObjectPath
