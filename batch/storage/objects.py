"""Object storage (S3 and compatible): one PUT per write, conditional updates, lease locks, and
publishing by copy with the marker object last (there is no rename).

Publishing is fenced by the lease lock held on the folder above (`_fence_for`): the lease is
renewed with a conditional write before the copy and again just before the marker object, the
marker is written create-only, and a lease that ran out during that PUT has the marker and the
copies removed again; a lapsed holder's LATEST is never written (see `batch.storage.lease`).
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from batch.core.errors import LeaseLost
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
_FENCES: dict[str, LeaseLock] = {}  # the lease lock of each folder, by the folder's URL


def _fence_for(target: ObjectPath) -> LeaseLock | None:
    """The lease lock this process holds (or held and lost) on a folder above `target`."""
    for root, lease in _FENCES.items():
        if str(target).startswith(root + "/") and (lease.held or lease.lost):
            return lease
    return None


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
        fence = _fence_for(self.target)
        if fence is not None:
            try:
                fence.verify()
            except LeaseLost as exc:  # a lapsed holder never moves LATEST (and the like)
                raise StorageError(errno.ESTALE, str(exc)) from None
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
        `staged`; a copy killed half-way leaves a prefix without its marker (remove_unmarked).
        Fenced by the lease held above `final` (LeaseLost: nothing stays published)."""
        target = _obj(final)
        keep = include or (lambda name: True)
        source_store = self if isinstance(staged, ObjectPath) else LOCAL
        fence = _fence_for(target)
        if fence is not None:
            fence.verify()
        staged_files = source_store.files_under(staged)
        sources = [
            f
            for f in staged_files
            if f.name != marker and keep(_relative(f, staged).split("/", 1)[0])
        ]
        if not staged_files:  # the staging folder was removed under it: never publish it empty
            raise StorageError(
                errno.ENOENT, f"nothing is staged in {staged} to publish as {target}"
            )
        try:
            self._copy_all(source_store, staged, target, sources)
            _write_marker(target / marker, marker_data, fence)
        except LeaseLost:
            self.rmtree(target, ignore_errors=True)  # only ever this run's own folder
            raise
        source_store.rmtree(staged, ignore_errors=True)

    def _copy_all(
        self, source_store: Store, staged: Location, target: ObjectPath, sources: list[Location]
    ) -> None:
        targets = [target / _relative(f, staged) for f in sources]
        if not sources:
            return
        with storage(target):
            if isinstance(staged, ObjectPath):
                keys = [_obj(s).key for s in sources]
                target.fs.copy(keys, [t.key for t in targets])
            else:
                target.fs.put([str(s) for s in sources], [t.key for t in targets])

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
        where = _obj(path)
        lease = LeaseLock(where)
        current = _FENCES.get(str(where.parent))
        if current is None or not (current.held or current.lost):  # never hide a held one
            _FENCES[str(where.parent)] = lease
        return lease

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


def _write_marker(where: ObjectPath, data: bytes, fence: LeaseLock | None) -> None:
    """The write that makes a folder visible: under a freshly renewed lease, create-only, and
    taken back when the lease ran out while it was sent."""
    if fence is not None:
        fence.verify()
    try:
        conditional.put(where, data, None)
    except OSError as exc:
        if not conditional.is_conflict(exc):
            raise
        raise StorageError(errno.EEXIST, f"{where} exists already; it was left alone") from None
    if fence is not None:
        try:
            fence.still_held()
        except LeaseLost:
            where.unlink(missing_ok=True)
            raise


@contextmanager
def _temporary_folder(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"batch-{prefix.strip('.-')}-") as tmp:
        yield Path(tmp)


OBJECTS = ObjectStore()
