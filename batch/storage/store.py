"""One store interface, two implementations: what the job does to a location, whatever its kind.

`batch.storage.fs.store_for(location)` is the one place that asks which kind a location is.
Everything a local disk and an object store do differently (atomic writes, appends,
read-modify-writes, locks, publishing a folder so that readers never see it half-made, clean-up
after a kill, what an error means) is a method here, implemented by `LocalStore`
(`batch.storage.local`) and `ObjectStore` (`batch.storage.objects`). The rest of the code calls
these through `batch.storage.fs`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from batch.storage.errors import StorageError
from batch.storage.location import Location

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs


class Lock(Protocol):
    """A lock's interface, kernel flock or lease object alike."""

    def acquire(self, blocking: bool = True, holder: dict[str, Any] | None = None) -> bool: ...

    def release(self) -> None: ...

    def holder(self) -> dict[str, Any]: ...

    def verify(self) -> None: ...


class StagedWrite(Protocol):
    """A file write prepared in advance: `commit()` makes it visible, `discard()` drops it."""

    def commit(self) -> None: ...

    def discard(self) -> None: ...


class Store(ABC):
    """What the job needs of a place to keep files; every method takes locations of this store."""

    # -- whole files and folders --
    @abstractmethod
    def write_atomic(self, path: Location, data: bytes) -> None:
        """Replace `path` so that a reader sees the old content or the new, never a mix."""

    @abstractmethod
    def staged_write(self, path: Location, data: bytes) -> StagedWrite:
        """Prepare replacing `path` (this may fail); its commit() is cheap and makes it visible."""

    @abstractmethod
    def append_line(self, path: Location, line: str) -> None:
        """Append one line; concurrent appends never lose or mix; a torn last line is ended."""

    @abstractmethod
    def update_json(self, path: Location, change: Callable[[Any], Any], default: Any) -> Any:
        """Replace a JSON document by change(current or default), never losing another writer's."""

    @abstractmethod
    def fsync_dir(self, path: Location) -> None:
        """Make renames inside folder `path` durable."""

    @abstractmethod
    def rmtree(self, path: Location, ignore_errors: bool = False) -> None:
        """Remove a folder and everything under it."""

    @abstractmethod
    def replace(self, src: Location, dst: Location) -> None:
        """Move file `src` over `dst` (a rename, or copy-then-delete where there is none)."""

    @abstractmethod
    def copy_file(self, src: Location, dst: Location) -> None:
        """Copy one file, within this store or between it and local disk."""

    @abstractmethod
    def files_under(self, path: Location) -> list[Location]:
        """Every file below `path` (recursively), sorted."""

    @abstractmethod
    def glob(self, pattern: str) -> list[Location]:
        """Files and folders matching a glob pattern, sorted."""

    @abstractmethod
    def is_pattern(self, entry: str) -> bool:
        """True when `entry` can only be a glob here (never a literal name)."""

    @abstractmethod
    def ensure_dir(self, path: Location) -> None:
        """Make sure folder `path` can be written (created locally; the bucket checked)."""

    @abstractmethod
    def check(self, path: Location) -> None:
        """StorageError when the store behind `path` cannot be used at all."""

    @abstractmethod
    def is_file_not_folder(self, path: Location) -> bool:
        """True when `path`, wanted as a folder, is a file."""

    @abstractmethod
    def is_folder_not_file(self, path: Location) -> bool:
        """True when `path`, wanted as a file, is a folder."""

    @abstractmethod
    def identity(self, path: Location) -> str:
        """A key that is equal for two names of one file."""

    # -- links (a bucket has none: these are for the local disk) --
    def refuse_link(self, path: Location) -> None:
        """PlantedLink when `path`, or a name on the way to it below its root, is a link."""
        return None

    def is_link(self, path: Location) -> bool:
        """True when `path` itself is a symbolic link."""
        return False

    def is_inside(self, path: Location, root: Location) -> bool:
        """True when `path` really is `root` or below it (links resolved)."""
        return str(path) == str(root) or str(path).startswith(str(root).rstrip("/") + "/")

    def make_dir(self, path: Location) -> None:
        """Create one new folder and its missing parents (FileExistsError when it exists); a
        bucket needs none."""
        return None

    # -- publishing folders --
    @abstractmethod
    def publish_folder(
        self,
        staged: Location,
        final: Location,
        marker: str,
        marker_data: bytes,
        include: Callable[[str], bool] | None = None,
    ) -> None:
        """Make `staged` appear complete at `final`, with `marker` written last.

        `include(name)` keeps only the top-level entries it accepts (default: all).
        """

    @abstractmethod
    def remove_unmarked(self, folder: Location, marker: str) -> bool:
        """Remove `folder` when a publish into it was cut short (no `marker`); True if removed."""

    @abstractmethod
    def private_folder(
        self, root: Location, prefix: str, guard: Callable[[], AbstractContextManager[Any]]
    ) -> AbstractContextManager[Path]:
        """A local folder to build something in, removed on exit unless published.

        `guard()` is held while the folder is created (so clean-up never sees it ownerless).
        """

    @abstractmethod
    def lock(self, path: Location) -> Lock:
        """The lock kept at `path`: released when its holder dies, however it dies."""

    @abstractmethod
    def classify(self, exc: BaseException, path: Location) -> StorageError | None:
        """The store's one-sentence error for `exc`, or None when the OS's own words say it."""

    # -- reading and writing bytes --
    @abstractmethod
    def open_binary(self, path: Location) -> IO[bytes]:
        """A seekable binary reader."""

    @abstractmethod
    def local_copy(self, path: Location) -> AbstractContextManager[Path]:
        """A local file with the content of `path` (the file itself when it is local)."""

    @abstractmethod
    def arrow(self, path: Location) -> tuple[pafs.FileSystem, str]:
        """(the pyarrow filesystem, the path in it) for `path`."""

    @abstractmethod
    def read_range(self, path: Location, start: int, end: int) -> AbstractContextManager[pa.Buffer]:
        """Bytes [start, end) of a file."""
