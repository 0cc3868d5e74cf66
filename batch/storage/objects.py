"""Object storage (S3 and compatible): one PUT per write, conditional updates, lease locks, and
publishing by copy with the marker object last (there is no rename)."""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from batch.storage import conditional
from batch.storage.errors import StorageError, classify, storage
from batch.storage.lease import LeaseLock
from batch.storage.local import LOCAL
from batch.storage.location import Location, ObjectPath, parse, s3
from batch.storage.store import Store

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

log = logging.getLogger(__name__)

_ARROW: dict[int, pafs.FileSystem] = {}


def _obj(path: Location | str) -> ObjectPath:
    found = parse(path) if isinstance(path, str) else path
    if not isinstance(found, ObjectPath):
        raise TypeError(f"{path!r} is not an object-store location")
    return found


def _relative(child: Location, root: Location) -> str:
    return str(child)[len(str(root)) :].lstrip("/")


class _StagedPut:
    """A PUT held back until commit()."""

    def __init__(self, target: ObjectPath, data: bytes) -> None:
        self.target, self.data = target, data

    def commit(self) -> None:
        self.target.write_bytes(self.data)

    def discard(self) -> None:
        return None


class ObjectStore(Store):
    """Objects in an S3-compatible bucket, through s3fs (and pyarrow's view of it)."""

    def write_atomic(self, path: Location, data: bytes) -> None:
        _obj(path).write_bytes(data)  # one PUT: readers see the old object or the new one

    def staged_write(self, path: Location, data: bytes) -> _StagedPut:
        return _StagedPut(_obj(path), data)  # nothing to prepare: the PUT is the switch

    def append_line(self, path: Location, line: str) -> None:
        conditional.append_line(_obj(path), line)  # no append: a conditional read-modify-write

    def update_json(self, path: Location, change: Callable[[Any], Any], default: Any) -> Any:
        return conditional.update_json(_obj(path), change, default)  # If-Match: nothing lost

    def fsync_dir(self, path: Location) -> None:
        return None  # a PUT is durable when it returns

    def rmtree(self, path: Location, ignore_errors: bool = False) -> None:
        where = _obj(path)
        try:
            with storage(where):
                if where.fs.exists(where.key):
                    where.fs.rm(where.key, recursive=True)
        except OSError:
            if not ignore_errors:
                raise

    def replace(self, src: Location, dst: Location) -> None:
        source, target = _obj(src), _obj(dst)
        with storage(source):  # a server-side copy (atomic per object), then delete
            source.fs.copy(source.key, target.key)
            source.fs.rm_file(source.key)

    def copy_file(self, src: Location, dst: Location) -> None:
        if isinstance(src, ObjectPath) and isinstance(dst, ObjectPath):
            with storage(src):
                src.fs.copy(src.key, dst.key)
        elif isinstance(dst, ObjectPath):
            with storage(dst):
                dst.fs.put_file(str(src), dst.key)
        else:
            source = _obj(src)
            with storage(source):
                source.fs.get_file(source.key, str(dst))

    def files_under(self, path: Location) -> list[Location]:
        where = _obj(path)
        with storage(where):
            names = where.fs.find(where.key)
        return [ObjectPath(f"s3://{n}", "file") for n in sorted(names)]

    def glob(self, pattern: str) -> list[Location]:
        root = _obj(pattern)
        with storage(root):
            found = root.fs.glob(root.key, detail=True)
        return [ObjectPath(f"s3://{n}", i.get("type")) for n, i in sorted(found.items())]

    def is_pattern(self, entry: str) -> bool:
        import glob as globlib

        return globlib.has_magic(entry)  # a bucket never holds a prefix named like a glob

    def ensure_dir(self, path: Location) -> None:
        self.check(path)  # a prefix exists once an object is under it; buckets are never made

    def check(self, path: Location) -> None:
        where = _obj(path)
        try:
            with storage(where):
                where.fs.call_s3("head_bucket", Bucket=where.bucket)
        except FileNotFoundError:  # HEAD has no body: a bare 404 is the missing bucket
            raise StorageError(
                errno.ENOENT,
                f"the bucket {where.bucket!r} does not exist (at {where}); "
                "create it or fix the URL",
            ) from None

    def is_file_not_folder(self, path: Location) -> bool:
        return False  # a prefix and an object may share a name: nothing to refuse

    def is_folder_not_file(self, path: Location) -> bool:
        return False

    def identity(self, path: Location) -> str:
        return str(path)

    def publish_folder(
        self,
        staged: Location,
        final: Location,
        marker: str,
        marker_data: bytes,
        include: Callable[[str], bool] | None = None,
    ) -> None:
        """Copy (server-side, or upload from local disk), the marker object last, then remove
        `staged`; a copy killed half-way leaves a prefix without its marker (remove_unmarked)."""
        target = _obj(final)
        keep = include or (lambda name: True)
        source_store = self if isinstance(staged, ObjectPath) else LOCAL
        sources = [
            f
            for f in source_store.files_under(staged)
            if f.name != marker and keep(_relative(f, staged).split("/", 1)[0])
        ]
        targets = [target / _relative(f, staged) for f in sources]
        with storage(target):
            if sources and isinstance(staged, ObjectPath):
                keys = [_obj(s).key for s in sources]
                target.fs.copy(keys, [t.key for t in targets])
            elif sources:
                target.fs.put([str(s) for s in sources], [t.key for t in targets])
        (target / marker).write_bytes(marker_data)
        source_store.rmtree(staged, ignore_errors=True)

    def remove_unmarked(self, folder: Location, marker: str) -> bool:
        where = _obj(folder)
        if (where / marker).exists():
            return False
        if where.is_dir():
            log.info("removing %s left incomplete by a publish that did not finish", where)
            self.rmtree(where, ignore_errors=True)
            return True
        return False

    def private_folder(
        self, root: Location, prefix: str, guard: Callable[[], AbstractContextManager[Any]]
    ) -> AbstractContextManager[Path]:
        # Built on local disk (Keras saves locally), uploaded by publish_folder.
        return _temporary_folder(prefix)

    def lock(self, path: Location) -> LeaseLock:
        return LeaseLock(_obj(path))

    def classify(self, exc: BaseException, path: Location) -> StorageError | None:
        return classify(exc, path)

    def open_binary(self, path: Location) -> IO[bytes]:
        return _obj(path).open("rb")

    @contextmanager
    def local_copy(self, path: Location) -> Iterator[Path]:
        where = _obj(path)
        with tempfile.TemporaryDirectory(prefix="batch-") as tmp:
            local = Path(tmp) / (where.name or "object")
            self.copy_file(where, local)
            yield local

    def arrow(self, path: Location) -> tuple[pafs.FileSystem, str]:
        import pyarrow.fs as pafs

        pid = os.getpid()
        found = _ARROW.get(pid)
        if found is None:
            _ARROW.clear()
            found = _ARROW[pid] = pafs.PyFileSystem(pafs.FSSpecHandler(s3()))
        return found, _obj(path).key

    @contextmanager
    def read_range(self, path: Location, start: int, end: int) -> Iterator[pa.Buffer]:
        import pyarrow as pa

        where = _obj(path)
        with storage(where):
            data = where.fs.cat_file(where.key, start=start, end=end)
        yield pa.py_buffer(data)


@contextmanager
def _temporary_folder(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"batch-{prefix.strip('.-')}-") as tmp:
        yield Path(tmp)


OBJECTS = ObjectStore()
