"""One filesystem layer for every location: local paths stay pathlib.Path, s3:// URLs are ObjectPath.

Every location setting (--input, --output-dir, --models-dir, --data, --metrics-dir) goes through
`path()`. A local path is a plain `pathlib.Path` and behaves exactly as before; an `s3://bucket/key`
URL becomes an `ObjectPath`, which offers the part of the pathlib interface the job uses (`/`,
name, parent, exists, is_dir, iterdir, read_text, write_bytes, open, ...) on top of fsspec's S3
filesystem (s3fs). Arrow reads and writes both kinds through one `pyarrow.fs` FileSystem
(`arrow()`: Arrow's own local filesystem, or s3fs wrapped in `PyFileSystem(FSSpecHandler(...))`),
so the readers and writers have one code path. What object storage cannot do the way a disk does
(rename a folder, append to a file, take a kernel lock) lives in `batch.storage.objectstore`.

Credentials and the endpoint come the standard AWS way (botocore): AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE and the config files, AWS_DEFAULT_REGION,
AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) for S3-compatible stores. Nothing here logs them.
"""

from __future__ import annotations

import errno
import glob as globlib
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # pyarrow is imported when a file is opened, so --help stays fast
    import pyarrow as pa
    import pyarrow.fs as pafs

SCHEMES = ("s3",)
URL_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Multipart part size and read-ahead of S3 files: every open writer buffers one part, so a sink
# (three writers) holds at most 3 x 8 MB; 8 MB x 10,000 parts allows objects up to 80 GB.
BLOCK_BYTES = 8 << 20
# Bounded waits: a wrong endpoint fails in seconds rather than after botocore's minute-long
# default connect timeout; throttling and 5xx are retried a few times ("standard" mode).
CLIENT_CONFIG = {
    "connect_timeout": 5,
    "read_timeout": 60,
    "retries": {"max_attempts": 3, "mode": "standard"},
}


class StorageError(OSError):
    """An object store refused or could not be reached; its message is one readable sentence."""


# -- locations -------------------------------------------------------------------------------------


def is_url(text: object) -> bool:
    """True for 'scheme://...' text."""
    return isinstance(text, str) and URL_RE.match(text) is not None


def path(value: str | os.PathLike[str] | ObjectPath) -> Location:
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


def is_object(location: object) -> bool:
    """True when `location` is in object storage (an ObjectPath or an s3:// URL)."""
    return isinstance(location, ObjectPath) or is_url(location)


_FILESYSTEMS: dict[int, Any] = {}


def s3() -> Any:
    """This process's s3fs filesystem (one per process: Dask workers and forks make their own).

    Listings are never cached: other processes (another run, a trainer) change the bucket.
    """
    pid = os.getpid()
    fs = _FILESYSTEMS.get(pid)
    if fs is None:
        import s3fs

        fs = s3fs.S3FileSystem(
            use_listings_cache=False,
            skip_instance_cache=True,
            default_block_size=BLOCK_BYTES,
            config_kwargs=CLIENT_CONFIG,
        )
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

    def __reduce__(self):
        return (ObjectPath, (self.url,))

    # -- the store --
    @property
    def fs(self) -> Any:
        return s3()

    def exists(self) -> bool:
        with storage(self):
            return self.fs.exists(self.key)

    def is_dir(self) -> bool:
        """True when objects exist under this prefix (a prefix has no existence of its own)."""
        if self._kind is not None:
            return self._kind == "directory"
        with storage(self):
            return self.fs.isdir(self.key)

    def is_file(self) -> bool:
        if self._kind is not None:
            return self._kind == "file"
        with storage(self):
            return self.fs.isfile(self.key)

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

    def open(self, mode: str = "rb", **kwargs: Any) -> IO:
        with storage(self):
            return self.fs.open(self.key, mode, **kwargs)

    def read_bytes(self) -> bytes:
        with storage(self):
            return self.fs.cat_file(self.key)

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
        """Nothing to do: a prefix exists once an object is under it (and buckets are never created)."""

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            with storage(self):
                self.fs.rm_file(self.key)
        except FileNotFoundError:
            if not missing_ok:
                raise


Location = Union[Path, ObjectPath]


# -- the operations pathlib has no method for ------------------------------------------------------


def rmtree(location: Location, ignore_errors: bool = False) -> None:
    """Remove a folder (a local directory tree, or every object under a prefix)."""
    if isinstance(location, ObjectPath):
        try:
            with storage(location):
                if location.fs.exists(location.key):
                    location.fs.rm(location.key, recursive=True)
        except OSError:
            if not ignore_errors:
                raise
        return
    shutil.rmtree(location, ignore_errors=ignore_errors)


def replace(src: Location, dst: Location) -> None:
    """os.replace for files; on object storage a server-side copy (atomic per object), then delete."""
    if isinstance(src, ObjectPath):
        with storage(src):
            src.fs.copy(src.key, dst.key)
            src.fs.rm_file(src.key)
        return
    os.replace(src, dst)


def copy_file(src: Location, dst: Location) -> None:
    """Copy one file: server-side within the store, an upload or download across."""
    if isinstance(src, ObjectPath) and isinstance(dst, ObjectPath):
        with storage(src):
            src.fs.copy(src.key, dst.key)
    elif isinstance(dst, ObjectPath):
        with storage(dst):
            dst.fs.put_file(str(src), dst.key)
    elif isinstance(src, ObjectPath):
        with storage(src):
            src.fs.get_file(src.key, str(dst))
    else:
        shutil.copyfile(src, dst)


def files_under(location: Location) -> list[Location]:
    """Every file below `location` (recursively), sorted."""
    if isinstance(location, ObjectPath):
        with storage(location):
            names = location.fs.find(location.key)
        return [ObjectPath(f"s3://{n}", "file") for n in sorted(names)]
    return sorted(p for p in Path(location).rglob("*") if p.is_file())


def identity(location: Location) -> str:
    """A key that is equal for two names of one file (realpath locally, the URL for objects)."""
    return str(location) if isinstance(location, ObjectPath) else os.path.realpath(location)


def has_magic(text: str) -> bool:
    return globlib.has_magic(text)


def glob(pattern: str) -> list[Location]:
    """Files and folders matching a glob pattern (a local path or an s3:// URL), sorted."""
    if is_url(pattern):
        root = path(pattern)
        assert isinstance(root, ObjectPath)
        with storage(root):
            found = root.fs.glob(root.key, detail=True)
        return [ObjectPath(f"s3://{n}", i.get("type")) for n, i in sorted(found.items())]
    return sorted(Path(p) for p in globlib.glob(os.path.expanduser(pattern)))


def ensure_dir(location: Location) -> None:
    """A local folder is created (parents too); an object location must be a reachable bucket."""
    if isinstance(location, ObjectPath):
        check(location)
        return
    Path(location).mkdir(parents=True, exist_ok=True)
    if not Path(location).is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(location))


def check(location: Location) -> None:
    """StorageError unless the location's bucket exists and these credentials may use it."""
    if not isinstance(location, ObjectPath):
        return
    try:
        with storage(location):
            location.fs.call_s3("head_bucket", Bucket=location.bucket)
    except FileNotFoundError:  # HEAD has no body: a bare 404 is the missing bucket
        raise StorageError(
            errno.ENOENT,
            f"the bucket {location.bucket!r} does not exist (at "
            f"{location}); create it or fix the URL",
        ) from None


@contextmanager
def local_copy(location: Location) -> Iterator[Path]:
    """A local file with the content of `location` (the file itself when it is local)."""
    if not isinstance(location, ObjectPath):
        yield Path(location)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="batch-") as tmp:
        local = Path(tmp) / (location.name or "object")
        copy_file(location, local)
        yield local


def open_binary(location: Location) -> IO[bytes]:
    """A seekable binary reader for a local file or an object."""
    if isinstance(location, ObjectPath):
        return location.open("rb")
    return open(location, "rb")


# -- Arrow: one pyarrow.fs FileSystem for both kinds ------------------------------------------------

_ARROW: dict[int, pafs.FileSystem] = {}


def arrow(location: Location) -> tuple[pafs.FileSystem, str]:
    """(the pyarrow filesystem, the path in it) for a location."""
    import pyarrow.fs as pafs

    if isinstance(location, ObjectPath):
        pid = os.getpid()
        fs = _ARROW.get(pid)
        if fs is None:
            _ARROW.clear()
            fs = _ARROW[pid] = pafs.PyFileSystem(pafs.FSSpecHandler(s3()))
        return fs, location.key
    return pafs.LocalFileSystem(), os.path.abspath(location)


def open_input_file(location: Location) -> pa.NativeFile:
    """A random-access reader (Parquet)."""
    fs, where = arrow(location)
    with storage(location):
        return fs.open_input_file(where)


def open_input_stream(location: Location) -> pa.NativeFile:
    """A sequential reader; a .gz file is decompressed (by its name)."""
    fs, where = arrow(location)
    with storage(location):
        return fs.open_input_stream(where, compression="detect")


def open_output(location: Location) -> pa.NativeFile:
    """A writer; on object storage a multipart upload that completes when it is closed."""
    fs, where = arrow(location)
    with storage(location):
        return fs.open_output_stream(where)


@contextmanager
def read_range(location: Location, start: int, end: int) -> Iterator[pa.Buffer]:
    """Bytes [start, end) of a file: a zero-copy memory map locally, one ranged GET for an object."""
    import pyarrow as pa

    if isinstance(location, ObjectPath):
        with storage(location):
            data = location.fs.cat_file(location.key, start=start, end=end)
        yield pa.py_buffer(data)
        return
    mapped = pa.memory_map(str(location))
    try:
        yield mapped.read_at(end - start, start)
    finally:
        mapped.close()


# -- errors: one sentence for whatever the store or the network said --------------------------------


@contextmanager
def storage(location: object) -> Iterator[None]:
    """Turn botocore/aiohttp/s3fs errors into a StorageError (an OSError) with a readable message.

    Only for an object-store location: a local file's OS error passes through unchanged (its
    own words say what is wrong; AWS credentials have nothing to do with it).
    """
    try:
        yield
    except StorageError:
        raise
    except FileExistsError:
        raise  # a failed create-only write: callers decide
    except Exception as exc:
        if location is not None and not is_object(location) and not is_url(str(location)):
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
        return StorageError(
            errno.EHOSTUNREACH,
            f"the object store{where} cannot be reached "
            f"({kind}); check AWS_ENDPOINT_URL and the network",
        )
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
        bucket = location.bucket if isinstance(location, ObjectPath) else "?"
        return StorageError(
            errno.ENOENT, f"the bucket {bucket!r} does not exist{where}; create it or fix the URL"
        )
    if isinstance(exc, FileNotFoundError):
        return None  # a missing object: the caller's own message says which
    if module.startswith(("botocore", "aiobotocore", "aiohttp", "s3fs")) or code:
        return StorageError(errno.EIO, f"the object store failed{where} ({code or kind}: {text})")
    return None
