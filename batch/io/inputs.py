"""Input files for every engine: inspect (hash, sniff) them, cut them into parts, stream a part.

A file is streamed whole by the local engine, or in parts (Parquet row groups, CSV byte ranges
cut at line ends) by the Dask engine; both read a part with the same `iter_batches`, and every
read error (`read_errors.READ_ERRORS`) goes through one classifier (`read_errors.read_error`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from dataclasses import replace

import pyarrow as pa

from batch.core.errors import InputError
from batch.io.csv_reader import csv_batches, inspect_csv, line_ranges
from batch.io.discovery import file_format
from batch.io.parquet_reader import inspect_parquet, parquet_batches, row_group_parts
from batch.io.read_errors import READ_ERRORS, read_error
from batch.io.source import InputFile, Part
from batch.storage import fs

HASH_BLOCK = 1 << 20


def inspect(path: fs.Location) -> InputFile:
    """Columns, types, sha256 and (CSV) delimiter and header of `path`; InputError if bad."""
    fmt = file_format(path)
    try:
        with fs.storage(path):
            before = path.stat()
            digest, quoted = _hash(path)
    except OSError as exc:
        raise InputError(f"cannot read input {str(path)!r}: {exc.strerror or exc}") from None
    if fmt == "parquet":
        src = inspect_parquet(path, digest)
    else:
        src = inspect_csv(path, digest)
        src = replace(src, quoted=quoted and not path.name.lower().endswith(".gz"))
    return replace(src, size=before.st_size, mtime_ns=before.st_mtime_ns)


def _hash(path: fs.Location) -> tuple[str, bool]:
    """(sha256 of the file, whether it holds a double quote), in one pass over its bytes."""
    digest, quoted = hashlib.sha256(), False
    with fs.open_binary(path) as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
            quoted = quoted or b'"' in block
    return digest.hexdigest(), quoted


def check_unchanged(src: InputFile) -> None:
    """InputError when a file changed since it was hashed (it was still being written)."""
    try:
        with fs.storage(src.path):
            now = src.path.stat()
    except OSError:
        now = None
    if now is None or (now.st_size, now.st_mtime_ns) != (src.size, src.mtime_ns):
        raise InputError(
            f"input {src.name!r} changed while it was being scored (still being "
            "written?); nothing was published — write files under a temporary name "
            "and rename them into the input folder when complete"
        )


# -- parts: what one task streams ------------------------------------------------------------------


def whole(src: InputFile, file_index: int) -> Part:
    """The whole file as one part (the local engine's way)."""
    return Part(file_index, 0, src)


def split(src: InputFile, file_index: int, part_bytes: int) -> list[Part]:
    """The file in parts of about `part_bytes`: Parquet by row group, plain CSV by byte range.

    A compressed CSV, or one with quoted fields, stays one part. CSV parts after the first have no
    first_row yet: count the rows of the earlier parts (count_rows) to number them.
    """
    if src.empty:
        return []
    try:
        if src.format == "parquet":
            return row_group_parts(src, file_index)
        if src.path.name.lower().endswith(".gz") or src.quoted:
            # gzip cannot be cut; a quoted field may hold a line break, so a cut at a line
            # end could fall inside it.
            return [whole(src, file_index)]
        ranges = line_ranges(src.path, src.size, part_bytes)
    except READ_ERRORS as exc:
        raise read_error(src.name, exc) from None
    return [
        Part(file_index, i, src, 1 if i == 0 else None, byte_range=r) for i, r in enumerate(ranges)
    ]


def count_rows(part: Part) -> int:
    """Data rows in `part`, read exactly as iter_batches reads them (blank lines do not count)."""
    return sum(b.num_rows for b in iter_batches(part, 1 << 30))


def numbered(parts: list[Part], counts: list[int]) -> list[Part]:
    """The parts of one file with first_row set from the row counts of the parts before each."""
    out, first = [], 1
    for part, n in zip(parts, counts):
        out.append(replace(part, first_row=first))
        first += n
    return out


def iter_batches(part: Part, chunk_rows: int) -> Generator[pa.RecordBatch, None, None]:
    """Stream a part in record batches of about `chunk_rows` rows; bad content raises InputError."""
    src = part.src
    if src.empty:
        return
    try:
        if src.format == "parquet":
            yield from parquet_batches(part, chunk_rows)
        else:
            yield from csv_batches(part, chunk_rows)
    except READ_ERRORS as exc:
        raise read_error(src.name, exc) from None
