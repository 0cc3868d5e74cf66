"""The storage API the rest of the job calls: one function per operation, whatever the location.

A location is a `pathlib.Path` (local disk) or an `ObjectPath` (an s3:// URL), parsed once by
`parse()` where settings are read (`batch.settings`). Each function here hands the work to the
store that keeps the location (`batch.storage.store.store_for`), so no module outside this package
asks which kind a location is. Arrow reads and writes both kinds through one `pyarrow.fs`
FileSystem (`arrow()`), so the readers and writers have one code path.
"""

from __future__ import annotations

import glob as globlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from batch.storage.errors import StorageError, storage
from batch.storage.errors import classify as classify_any
from batch.storage.local import LOCAL
from batch.storage.location import Location, ObjectPath, is_url, parse, set_deadline
from batch.storage.objects import OBJECTS
from batch.storage.store import Lock, StagedWrite, Store

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

__all__ = [
    "Location", "ObjectPath", "StorageError", "is_url", "parse", "path", "set_deadline", "storage",
]  # fmt: skip

path = parse  # the name every caller has used: fs.path(setting) -> a Location


def store_for(location: Location | str) -> Store:
    """The store that keeps `location`: the only place that asks which kind a location is."""
    if isinstance(location, ObjectPath) or is_url(location):
        return OBJECTS
    return LOCAL


def write_atomic(location: Location, data: bytes | str) -> None:
    """Replace a file so that readers see the old content or the new one, never a mix."""
    store_for(location).write_atomic(location, data.encode() if isinstance(data, str) else data)


def staged_write(location: Location, data: bytes | str) -> StagedWrite:
    """Prepare replacing a file (this may fail); its commit() makes it visible."""
    raw = data.encode() if isinstance(data, str) else data
    return store_for(location).staged_write(location, raw)


def append_line(location: Location, line: str) -> None:
    """Append one line (concurrent appends are never lost or mixed)."""
    store_for(location).append_line(location, line)


def update_json(location: Location, change: Callable[[Any], Any], default: Any) -> Any:
    """Replace a JSON document by change(current or `default`) without losing a concurrent write."""
    return store_for(location).update_json(location, change, default)


def fsync_dir(location: Location) -> None:
    """Make renames inside a folder durable."""
    store_for(location).fsync_dir(location)


def rmtree(location: Location, ignore_errors: bool = False) -> None:
    """Remove a folder (a local directory tree, or every object under a prefix)."""
    store_for(location).rmtree(location, ignore_errors)


def replace(src: Location, dst: Location) -> None:
    """Move a file over another (os.replace, or a server-side copy then delete)."""
    store_for(src).replace(src, dst)


def copy_file(src: Location, dst: Location) -> None:
    """Copy one file: server-side within a store, an upload or a download across."""
    store_for(dst if isinstance(dst, ObjectPath) else src).copy_file(src, dst)


def files_under(location: Location) -> list[Location]:
    """Every file below `location` (recursively), sorted."""
    return store_for(location).files_under(location)


def identity(location: Location) -> str:
    """A key that is equal for two names of one file (realpath locally, the URL for objects)."""
    return store_for(location).identity(location)


def has_magic(text: str) -> bool:
    """True when `text` has glob characters."""
    return globlib.has_magic(text)


def is_pattern(entry: str) -> bool:
    """True when an --input entry can only be a glob where it points (never a literal name)."""
    return store_for(entry).is_pattern(entry)


def glob(pattern: str) -> list[Location]:
    """Files and folders matching a glob pattern (a local path or an s3:// URL), sorted."""
    return store_for(pattern).glob(pattern)


def ensure_dir(location: Location) -> None:
    """A local folder is created (parents too); an object location must be a reachable bucket."""
    store_for(location).ensure_dir(location)


def check(location: Location) -> None:
    """StorageError when the store behind `location` cannot be used (a missing bucket, ...)."""
    store_for(location).check(location)


def refuse_link(location: Location) -> None:
    """PlantedLink (an OSError naming it) when `location`, or a name on the way to it below
    its root, is a symbolic link the jobs did not make (see batch.storage.links)."""
    store_for(location).refuse_link(location)


def is_link(location: Location) -> bool:
    """True when `location` itself is a symbolic link (never in a bucket)."""
    return store_for(location).is_link(location)


def is_inside(location: Location, root: Location) -> bool:
    """True when `location` really is `root` or below it (real paths compared)."""
    return store_for(location).is_inside(location, root)


def make_dir(location: Location) -> None:
    """Create one new folder (and missing parents), mode 0755; FileExistsError when it is there."""
    store_for(location).make_dir(location)


def set_roots(roots: list[object]) -> None:
    """The folders the user named (output, registry, metrics): below them no link is followed."""
    from batch.storage import links

    links.set_roots(roots)


def is_file_not_folder(location: Location) -> bool:
    """True when `location`, wanted as a folder, is a file."""
    return store_for(location).is_file_not_folder(location)


def is_folder_not_file(location: Location) -> bool:
    """True when `location`, wanted as a file, is a folder."""
    return store_for(location).is_folder_not_file(location)


def publish_folder(
    staged: Location,
    final: Location,
    marker: str,
    marker_data: bytes,
    include: Callable[[str], bool] | None = None,
) -> None:
    """Make `staged` appear complete at `final`, its `marker` file written last."""
    store_for(final).publish_folder(staged, final, marker, marker_data, include)


def remove_unmarked(folder: Location, marker: str) -> bool:
    """Remove a folder a publish left without its marker; True when it was removed."""
    return store_for(folder).remove_unmarked(folder, marker)


def private_folder(
    root: Location, prefix: str, guard: Callable[[], AbstractContextManager[Any]]
) -> AbstractContextManager[Path]:
    """A local folder to build something in before it is published under `root`."""
    return store_for(root).private_folder(root, prefix, guard)


def lock(location: Location) -> Lock:
    """The lock at `location`: a kernel flock on disk, a lock object with a lease in a bucket."""
    return store_for(location).lock(location)


def classify(exc: BaseException, location: object = None) -> StorageError | None:
    """The object store's one-sentence error for `exc`; None for a local location's OS error."""
    if isinstance(location, Path | ObjectPath | str):
        return store_for(location).classify(exc, location)  # type: ignore[arg-type]
    return classify_any(exc, location)  # no location to tell by: whatever the error says


def local_copy(location: Location) -> AbstractContextManager[Path]:
    """A local file with the content of `location` (the file itself when it is local)."""
    return store_for(location).local_copy(location)


def open_binary(location: Location) -> IO[bytes]:
    """A seekable binary reader for a local file or an object."""
    return store_for(location).open_binary(location)


def arrow(location: Location) -> tuple[pafs.FileSystem, str]:
    """(the pyarrow filesystem, the path in it) for a location."""
    return store_for(location).arrow(location)


def open_input_file(location: Location) -> pa.NativeFile:
    """A random-access reader (Parquet)."""
    filesystem, where = arrow(location)
    with storage(location):
        return filesystem.open_input_file(where)


def open_input_stream(location: Location) -> pa.NativeFile:
    """A sequential reader; a .gz file is decompressed (by its name)."""
    filesystem, where = arrow(location)
    with storage(location):
        return filesystem.open_input_stream(where, compression="detect")


def open_output(location: Location) -> pa.NativeFile:
    """A writer; on object storage a multipart upload that completes when it is closed."""
    filesystem, where = arrow(location)
    with storage(location):
        return filesystem.open_output_stream(where)


def read_range(location: Location, start: int, end: int) -> AbstractContextManager[pa.Buffer]:
    """Bytes [start, end) of a file: a memory map locally, one ranged GET for an object."""
    return store_for(location).read_range(location, start, end)


def forget_clients() -> None:
    """Drop this process's object-store clients, so the next call reads the AWS_* settings anew."""
    from batch.storage import location, objects

    location._FILESYSTEMS.clear()
    objects._ARROW.clear()
