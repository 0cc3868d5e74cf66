"""Finding inputs: the files an --input entry names (a file, a folder, a glob; local or s3://)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from batch.core.errors import InputError
from batch.core.quoting import excerpt
from batch.storage import fs

log = logging.getLogger(__name__)

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")


def file_format(path: fs.Location) -> str | None:
    """'csv', 'parquet' or None, from the file name."""
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def resolve_inputs(entries: list[str]) -> list[fs.Location]:
    """Files named by --input entries: a file, a folder (its supported files, sorted) or a glob.

    An entry may be an s3:// URL: an object, a prefix (its objects, one level) or a glob.
    """
    found: list[fs.Location] = []
    for entry in entries:
        try:
            with fs.storage(entry):
                found.extend(_resolve(entry))
        except fs.StorageError as exc:
            raise InputError(f"cannot list input {entry!r}: {exc}") from None
    unique: list[fs.Location] = []
    seen: set[str] = set()
    for p in found:
        key = fs.identity(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
            note_link(p)
    return unique


def note_link(path: fs.Location) -> None:
    """Log an input reached through a link whose target is outside the folder that holds it,
    with the real path it resolves to (the operator sees what is really read)."""
    if not isinstance(path, Path):
        return  # an object store has no links
    try:
        real = Path(os.path.realpath(path))
        root = Path(os.path.realpath(path.parent))
    except (OSError, ValueError):
        return
    if real.parent != root and not real.is_relative_to(root):
        log.warning(
            "input %s is a link to %s, outside its folder %s; that file is what is read",
            excerpt(str(path), 300),
            excerpt(str(real), 300),
            excerpt(str(root), 300),
        )


def names_files(entry: str) -> bool:
    """Whether an --input entry names at least one file to score: a file that exists, or a
    folder or glob holding a supported one (a missing path, or a glob matching nothing, is
    False, not an error; a listing that fails, or a file of another kind, is InputError as in
    resolve_inputs). Locally a glob may also be a literal name: as in _resolve, it is a glob
    only when no such path exists."""
    if not fs.is_pattern(entry):
        try:
            with fs.storage(entry):
                if not fs.path(entry).expanduser().exists() and not fs.has_magic(entry):
                    return False
        except fs.StorageError as exc:
            raise InputError(f"cannot look for input {entry!r}: {exc}") from None
        except ValueError as exc:
            raise InputError(f"input {entry!r}: {exc}") from None
    return bool(resolve_inputs([entry]))


def _resolve(entry: str) -> list[fs.Location]:
    """The files of one --input entry (see resolve_inputs)."""
    found: list[fs.Location] = []
    try:
        path = fs.path(entry).expanduser()
    except ValueError as exc:
        raise InputError(f"input {entry!r}: {exc}") from None
    # Only a glob there when it is a pattern (a bucket never holds a prefix named like one).
    literal = not fs.is_pattern(entry)
    if literal and path.is_dir():
        children: list[fs.Location] = list(path.iterdir())
        for child in sorted(children):
            if child.is_file() and file_format(child) and not child.name.startswith("."):
                found.append(child)
            elif child.is_file() or child.is_dir():
                log.info("ignoring %s (not a .csv, .csv.gz, .parquet or .pq file)", child)
    elif literal and path.is_file():
        if file_format(path) is None:
            raise InputError(
                f"input {entry!r} is not a .csv, .csv.gz, .parquet or .pq file; "
                "rename it or point --input at a supported file"
            )
        found.append(path)
    elif fs.has_magic(entry):
        matches = fs.glob(entry)
        files = [p for p in matches if p.is_file() and file_format(p)]
        for p in matches:
            if p not in files:
                log.info("ignoring %s (not a .csv, .csv.gz, .parquet or .pq file)", p)
        if not files:
            log.warning("input pattern %r matches no supported files", entry)
        found.extend(files)
    else:
        fs.check(path)  # a missing bucket or a wrong key says so, not "does not exist"
        raise InputError(f"input {entry!r} does not exist; check --input / BATCH_INPUT")
    return found
