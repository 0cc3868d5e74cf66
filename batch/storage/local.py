"""The local disk: temp-then-rename writes, O_APPEND lines, flock locks, one rename to publish.

Nothing here writes, truncates or deletes through a symbolic link the jobs did not make
(`batch.storage.links`): such a link is refused as a PlantedLink, an OSError naming it.
"""

from __future__ import annotations

import glob as globlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from batch.storage import links
from batch.storage.errors import StorageError
from batch.storage.location import Location
from batch.storage.locks import FileLock
from batch.storage.store import Store

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

log = logging.getLogger(__name__)


def _local(path: Location) -> Path:
    return Path(os.fspath(path))  # type: ignore[arg-type]  # an ObjectPath has no __fspath__


class _StagedFile:
    """A temporary file beside its target: renamed over it, or removed."""

    def __init__(self, tmp: Path, target: Path) -> None:
        self.tmp, self.target = tmp, target

    def commit(self) -> None:
        os.replace(self.tmp, self.target)

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


def _remove(entry: Path) -> None:
    """Remove a file or folder the job made; a link is removed itself, never followed."""
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink()


class LocalStore(Store):
    """Files on a local (or mounted) file system."""

    def write_atomic(self, path: Location, data: bytes) -> None:
        self.staged_write(path, data).commit()

    def staged_write(self, path: Location, data: bytes) -> _StagedFile:
        target = _local(path)
        links.check(target)  # a link at the target is refused, not replaced
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        fd = links.open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            with open(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:  # a full disk, a signal: the temporary file goes too
            tmp.unlink(missing_ok=True)
            raise
        return _StagedFile(tmp, target)

    def append_line(self, path: Location, line: str) -> None:
        target = _local(path)
        created = not os.path.lexists(target)
        fd = links.open_file(target, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        try:
            data = line.rstrip("\n") + "\n"
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = "\n" + data  # a torn line from a crash must not swallow this one
            os.write(fd, data.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            self.fsync_dir(target.parent)

    def update_json(self, path: Location, change: Callable[[Any], Any], default: Any) -> Any:
        """Read, change, write atomically: the caller holds the lock that serialises writers."""
        target = _local(path)
        links.check(target)
        try:
            current = json.loads(target.read_text())
        except FileNotFoundError:
            current = default
        value = change(current)
        self.write_atomic(target, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())
        return value

    def fsync_dir(self, path: Location) -> None:
        fd = os.open(_local(path), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def rmtree(self, path: Location, ignore_errors: bool = False) -> None:
        folder = _local(path)
        try:
            links.check(folder)  # rmtree itself never follows a link below the folder
        except links.PlantedLink as exc:
            if not ignore_errors:
                raise
            log.warning("left alone: %s", exc.strerror)
            return
        shutil.rmtree(folder, ignore_errors=ignore_errors)

    def replace(self, src: Location, dst: Location) -> None:
        links.check(_local(src))
        links.check(_local(dst), final=False)  # a link at dst is replaced, never followed
        os.replace(_local(src), _local(dst))

    def copy_file(self, src: Location, dst: Location) -> None:
        links.check(_local(dst))
        shutil.copyfile(_local(src), _local(dst))

    def files_under(self, path: Location) -> list[Location]:
        return sorted(p for p in _local(path).rglob("*") if p.is_file())

    def glob(self, pattern: str) -> list[Location]:
        return sorted(Path(p) for p in globlib.glob(os.path.expanduser(pattern)))

    def is_pattern(self, entry: str) -> bool:
        return False  # a local folder may really be named like a glob: the name is tried first

    def ensure_dir(self, path: Location) -> None:
        links.make_dirs(_local(path))

    def refuse_link(self, path: Location) -> None:
        links.check(_local(path))

    def is_link(self, path: Location) -> bool:
        return _local(path).is_symlink()

    def is_inside(self, path: Location, root: Location) -> bool:
        return links.inside(_local(path), _local(root))

    def make_dir(self, path: Location) -> None:
        folder = _local(path)
        links.make_dirs(folder.parent)
        os.mkdir(folder, links.DIR_MODE)

    def check(self, path: Location) -> None:
        return None  # a local path's problems surface, in the OS's words, when it is used

    def is_file_not_folder(self, path: Location) -> bool:
        folder = _local(path)
        return folder.exists() and not folder.is_dir()

    def is_folder_not_file(self, path: Location) -> bool:
        return _local(path).is_dir()

    def identity(self, path: Location) -> str:
        return os.path.realpath(_local(path))

    def publish_folder(
        self,
        staged: Location,
        final: Location,
        marker: str,
        marker_data: bytes,
        include: Callable[[str], bool] | None = None,
    ) -> None:
        """Drop what `include` refuses, write the marker, fsync, then one rename."""
        folder, target = _local(staged), _local(final)
        links.check(folder)
        if include is not None:
            for child in folder.iterdir():
                if not include(child.name):  # a link is removed itself, never followed
                    _remove(child)
        self.write_atomic(folder / marker, marker_data)
        self.fsync_dir(folder)
        links.make_dirs(target.parent)
        links.check(target)
        os.rename(folder, target)

    def remove_unmarked(self, folder: Location, marker: str) -> bool:
        return False  # a local publish is one rename: a folder is never left half-made

    def private_folder(
        self, root: Location, prefix: str, guard: Callable[[], AbstractContextManager[Any]]
    ) -> AbstractContextManager[Path]:
        return self._private_folder(_local(root), prefix, guard)

    @contextmanager
    def _private_folder(
        self, root: Path, prefix: str, guard: Callable[[], AbstractContextManager[Any]]
    ) -> Iterator[Path]:
        path = root / f"{prefix}{uuid.uuid4().hex[:12]}"
        owner = FileLock(path.with_name(path.name + ".lock"), guards_folder=True)
        try:
            with guard():
                owner.acquire()
                links.check(path.parent)
                os.mkdir(path, links.DIR_MODE)
            yield path
        finally:
            if os.path.lexists(path):
                self.rmtree(path, ignore_errors=True)
            owner.release()
            try:
                owner.path.unlink(missing_ok=True)
            except OSError:  # a read-only folder: the empty lock file is harmless
                pass

    def lock(self, path: Location) -> FileLock:
        return FileLock(_local(path), guards_folder=True)

    def classify(self, exc: BaseException, path: Location) -> StorageError | None:
        return None  # a local file's OS error says what is wrong in its own words

    def open_binary(self, path: Location) -> IO[bytes]:
        return open(_local(path), "rb")

    @contextmanager
    def local_copy(self, path: Location) -> Iterator[Path]:
        yield _local(path)

    def arrow(self, path: Location) -> tuple[pafs.FileSystem, str]:
        import pyarrow.fs as pafs

        return pafs.LocalFileSystem(), os.path.abspath(_local(path))

    @contextmanager
    def read_range(self, path: Location, start: int, end: int) -> Iterator[pa.Buffer]:
        import pyarrow as pa

        mapped = pa.memory_map(str(_local(path)))
        try:
            yield mapped.read_at(end - start, start)
        finally:
            mapped.close()


LOCAL = LocalStore()
