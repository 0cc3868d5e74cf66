"""Never through a planted link: what the jobs create, append to or delete below their roots.

The roots are the folders a user names (the output folder, the registry, the metrics folder;
registered once by `batch.settings.load_settings`). A root itself may be a link (a mount moved
elsewhere is the user's choice), but below it every name the jobs use is checked with `lstat`
and every file is opened with O_NOFOLLOW: a symbolic link the jobs did not make is refused as a
`PlantedLink` (an OSError, so each location's guard turns it into exit 7 with one sentence
naming it), never written, truncated or deleted through. Folders the jobs create are made with
mode 0755 (narrowed by the umask, never widened).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path

DIR_MODE = 0o755  # a folder the jobs create: nobody else may plant anything in it
FILE_MODE = 0o644  # a file the jobs create (lock files too)

_ROOTS: list[str] = []


class PlantedLink(OSError):
    """A symbolic link where the jobs keep a file or folder of their own: refused, never used."""

    def __init__(self, link: Path | str) -> None:
        try:
            target = os.readlink(link)
        except OSError:
            target = "?"
        super().__init__(
            errno.ELOOP,
            f"{str(link)!r} is a symbolic link (to {target!r}) that the jobs did not make, "
            "so nothing was written through it",
        )


def set_roots(roots: Iterable[object]) -> None:
    """The folders this process works below (local paths only; others are ignored)."""
    _ROOTS[:] = sorted(
        {os.path.abspath(r) for r in roots if isinstance(r, Path)}, key=len, reverse=True
    )


def _root_of(path: str) -> str | None:
    for root in _ROOTS:
        if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
            return root
    return None


def _is_link(path: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def check(path: Path | str, final: bool = True) -> None:
    """PlantedLink when a name below its root on the way to `path` (or `path`, if `final`) is a
    symbolic link. Outside every root only `path` itself is checked."""
    full = os.path.abspath(path)
    root = _root_of(full)
    names: list[str] = []
    if root is not None and full != root:
        parts = os.path.relpath(full, root).split(os.sep)
        names = [os.path.join(root, *parts[: i + 1]) for i in range(len(parts) - 1)]
    if final and full != root:  # the root itself is the user's to place, through a link or not
        names.append(full)
    for name in names:
        if _is_link(name):
            raise PlantedLink(name)


def make_dirs(path: Path | str) -> None:
    """Create folder `path` and its missing parents (mode 0755), through no planted link."""
    check(path)
    missing: list[str] = []
    here = os.path.abspath(path)
    while not os.path.lexists(here):
        missing.append(here)
        parent = os.path.dirname(here)
        if parent == here:
            break
        here = parent
    for name in reversed(missing):
        try:
            os.mkdir(name, DIR_MODE)
        except FileExistsError:
            if _is_link(name):
                raise PlantedLink(name) from None
    if not os.path.isdir(path):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))


def open_file(path: Path | str, flags: int, mode: int = FILE_MODE) -> int:
    """os.open without following a link at `path` (nor below its root): PlantedLink instead."""
    check(path, final=False)
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP and _is_link(os.fspath(path)):
            raise PlantedLink(path) from None
        raise


def refuse_links_in(folder: Path | str) -> None:
    """PlantedLink naming the first symbolic link directly inside `folder` (a folder the jobs
    keep: the output folder, the registry), which holds none of its own."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.is_symlink():
            raise PlantedLink(os.path.join(folder, entry.name))


def inside(path: Path | str, root: Path | str) -> bool:
    """True when `path`'s real path is `root`'s real path or below it (links resolved)."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)
