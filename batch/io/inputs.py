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
from batch.io.source import DEFAULT_LIMITS, InputFile, Limits, Part
from batch.storage import fs

HASH_BLOCK = 1 << 20
PARQUET_MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b"


def inspect(path: fs.Location, limits: Limits = DEFAULT_LIMITS) -> InputFile:
    """Columns, types, sha256 and (CSV) delimiter and header of `path`; InputError if bad.

    What a file holds is told from its first bytes, not its name: gzip (1f 8b) is read through
    gzip whatever the name's case or suffix; Parquet data under a CSV name, or anything else
    under a Parquet name, is refused with a sentence naming what the file really holds.
    """
    try:
        with fs.storage(path):
            before = path.stat()
            digest, quoted, head = _hash(path)
    except OSError as exc:
        raise InputError(f"cannot read input {str(path)!r}: {exc.strerror or exc}") from None
    fmt = content_format(path, head)
    if fmt == "parquet":
        src = inspect_parquet(path, digest, limits)
    else:
        gz = head.startswith(GZIP_MAGIC)
        src = inspect_csv(path, digest, limits, gz=gz)
        src = replace(src, quoted=quoted and not gz)
    return replace(src, size=before.st_size, mtime_ns=before.st_mtime_ns)


def content_format(path: fs.Location, head: bytes) -> str:
    """'csv' or 'parquet': what the name says, when the first bytes agree; else InputError."""
    named = file_format(path) or "csv"
    if named == "csv" and head.startswith(PARQUET_MAGIC):
        raise InputError(
            f"input {str(path)!r} is named as a CSV file but holds Parquet data (it starts "
            "with the Parquet magic bytes PAR1); rename it to .parquet"
        )
    if named == "parquet" and head and not head.startswith(PARQUET_MAGIC):
        held = "gzip-compressed data" if head.startswith(GZIP_MAGIC) else "no Parquet data"
        if not head.startswith(GZIP_MAGIC) and _looks_like_text(head):
            held = "text (CSV?), not Parquet data"
        raise InputError(
            f"input {str(path)!r} is named as a Parquet file but holds {held} (it does not "
            "start with the Parquet magic bytes PAR1); rename a CSV file to .csv or .csv.gz"
        )
    return named


def _looks_like_text(head: bytes) -> bool:
    try:
        head[:4096].decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > 4090  # only a character cut at the end
    return b"\x00" not in head[:4096]


def _hash(path: fs.Location) -> tuple[str, bool, bytes]:
    """(sha256 of the file, whether it holds a double quote, its first bytes), in one pass."""
    digest, quoted, head = hashlib.sha256(), False, b""
    with fs.open_binary(path) as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
            quoted = quoted or b'"' in block
            head = head or block[:4096]
    return digest.hexdigest(), quoted, head


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
        if src.gzip or src.quoted:
            # gzip cannot be cut; a quoted field may hold a line break, so a cut at a line
            # end could fall inside it.
            return [whole(src, file_index)]
        ranges = line_ranges(src.path, src.size, part_bytes)
    except READ_ERRORS as exc:
        raise read_error(src.name, exc, src.batch_bytes) from None
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
        raise read_error(src.name, exc, src.batch_bytes) from None
