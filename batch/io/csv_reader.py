"""The one CSV reader: sniff a file's delimiter and header, cut it at line ends, stream its rows."""

from __future__ import annotations

import csv
import gzip
import logging
import re
import zlib
from collections.abc import Iterator
from contextlib import ExitStack

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from batch.core.errors import InputError
from batch.core.names import BOSTON_COLUMNS
from batch.io.source import DEFAULT_LIMITS, InputFile, Limits, Part, refuse_duplicates, refuse_wide
from batch.storage import fs

log = logging.getLogger(__name__)

SNIFF_BYTES = 1 << 16  # read at a time while looking for the end of the header line
# 1 MB blocks: with larger ones Arrow's streaming CSV reader's peak memory grew with the file's
# length here (32 MB blocks: 0.4 GB at 1M rows, 1.1 GB at 10M); at 1 MB it stays flat (~0.2 GB)
# and reads as fast. Small blocks are joined up to chunk_rows by csv_batches.
CSV_BLOCK_BYTES = 1 << 20
# A CSV row longer than a block is read again with blocks of a quarter of the file's batch_bytes
# (the max_batch_bytes setting; 8 MB by default), at most MAX_ROW_BYTES; longer rows are
# refused. A quarter, as Arrow's CSV parser holds 10 to 20 times a block's size while it parses
# one made of a few long fields (measured: 340 MB for 15 MB fields in 16 MB blocks).
ROW_SHARE = 4
MAX_ROW_BYTES = 128 << 20
LINE_END = re.compile(r"\r\n|\n|\r")


# -- sniffing --------------------------------------------------------------------------------------


def inspect_csv(
    path: fs.Location, digest: str, limits: Limits = DEFAULT_LIMITS, gz: bool = False
) -> InputFile:
    """The columns (all text), delimiter and header of a CSV file, from its first line.

    gz: the file is gzip-compressed (decided from its content by the caller).
    """
    text = _head_text(path, gz, limits.batch_bytes)
    lines = LINE_END.split(text)
    filled = [i for i, ln in enumerate(lines) if ln.strip()]
    if not filled:
        return InputFile(path, "csv", [], {}, digest, empty=True, gzip=gz)
    first_at = filled[0]
    first = lines[first_at]
    delimiter = max([",", ";", "\t"], key=lambda d: _count_outside_quotes(first, d))
    if _count_outside_quotes(first, delimiter) == 0:
        delimiter = ","
    fields = next(csv.reader([first], delimiter=delimiter))
    refuse_wide(path, len(fields), limits)
    fields = [f.strip().strip('"').strip() for f in fields]
    cells = [f for f in fields if f]
    if cells and all(_is_number(f) for f in cells):  # a data row (cells may be empty)
        if len(fields) not in (len(BOSTON_COLUMNS), len(BOSTON_COLUMNS) + 1):
            raise InputError(
                f"input {str(path)!r} has no header row and {len(fields)} columns; add a header "
                f"row, or send the 13-column Boston layout (rooms in column 6: "
                f"{', '.join(BOSTON_COLUMNS)}) with an optional 14th medv column"
            )
        names = BOSTON_COLUMNS + (["medv"] if len(fields) > len(BOSTON_COLUMNS) else [])
        has_header, skip = False, 0
        note = "no header row: read as the Boston layout (rooms = column 6, 'rm')"
    else:
        names = [f if f else f"column_{i + 1}" for i, f in enumerate(fields)]
        has_header, skip, note = True, first_at + 1, ""
        refuse_duplicates(path, names)
    return InputFile(
        path,
        "csv",
        names,
        {n: pa.string() for n in names},
        digest,
        delimiter=delimiter,
        has_header=has_header,
        skip_lines=skip,
        notes=[note] if note else [],
        gzip=gz,
        batch_bytes=limits.batch_bytes,
    )


def _head_text(path: fs.Location, gz: bool, limit: int) -> str:
    """The file's text up to the end of its first non-blank line (the header), at most `limit`
    bytes (InputError beyond: a header longer than a batch may be)."""
    head = b""
    try:
        with (
            fs.storage(path),
            fs.open_binary(path) as raw,
            gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw as fh,
        ):
            while len(head) <= limit:
                block = fh.read(SNIFF_BYTES)
                head += block
                if not block or _has_first_line(head):
                    break
    except (OSError, EOFError, zlib.error) as exc:  # zlib.error: a damaged gzip member
        raise InputError(f"cannot read input {str(path)!r} ({exc})") from None
    if len(head) > limit and not _has_first_line(head[:limit]):
        raise InputError(
            f"input {str(path)!r} has a header line longer than {limit >> 20} MB (the "
            "max_batch_bytes setting); shorten the header or raise --max-batch-bytes"
        )
    try:
        return head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut by the sniff window
            raise InputError(
                f"input {str(path)!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV"
            ) from None
        return head[: exc.start].decode("utf-8-sig")


def _has_first_line(head: bytes) -> bool:
    """Whether `head` holds a whole non-blank line (one followed by a line end)."""
    start = len(head) - len(head.lstrip(b" \t\r\n\xef\xbb\xbf"))
    return bool(re.search(rb"[\r\n]", head[start:]))


def _is_number(text: str) -> bool:
    try:
        float(text.strip().replace(",", ".") if text.count(",") == 1 else text)
        return True
    except ValueError:
        return False


def _count_outside_quotes(line: str, char: str) -> int:
    count, quoted = 0, False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif c == char and not quoted:
            count += 1
    return count


def line_ranges(path: fs.Location, size: int, part_bytes: int) -> list[tuple[int, int]]:
    """[start, end) byte ranges of about part_bytes, each ending just after a line end."""
    bounds = [0]
    with fs.open_binary(path) as fh:
        pos = part_bytes
        while pos < size:
            fh.seek(pos)
            fh.readline()  # to the end of the line that holds byte `pos`
            cut = fh.tell()
            if cut >= size:
                break
            bounds.append(cut)
            pos = cut + part_bytes
    bounds.append(size)
    return list(zip(bounds[:-1], bounds[1:]))


# -- reading ---------------------------------------------------------------------------------------


def csv_batches(part: Part, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """The part's rows, joined into batches of about chunk_rows or the file's batch_bytes.

    A row longer than a read block fails Arrow's reader; then the part is read again with
    blocks of batch_bytes, skipping the rows already given out. A row longer than that is
    refused (InputError).
    """
    done = 0
    longest = min(part.src.batch_bytes // ROW_SHARE, MAX_ROW_BYTES)
    block = min(CSV_BLOCK_BYTES, longest)
    while True:
        try:
            for batch in _csv_stream(part, chunk_rows, block, skip=done):
                if block > CSV_BLOCK_BYTES and _longest_field(batch) > longest:
                    raise _too_long(part, longest, done)  # Arrow read it across two blocks
                done += batch.num_rows
                yield batch
            return
        except pa.ArrowInvalid as exc:
            if "straddling" not in str(exc):
                raise
            if block >= longest:
                raise _too_long(part, longest, done) from None
            log.info(
                "%s: a row is longer than %d MB; reading it with %d MB blocks",
                part.src.name,
                block >> 20,
                longest >> 20,
            )
            block = longest


def _longest_field(batch: pa.RecordBatch) -> int:
    """The longest field of a batch, in bytes (checked only once a long row was met)."""
    return max((pc.max(pc.binary_length(c)).as_py() or 0 for c in batch.columns), default=0)


def _too_long(part: Part, longest: int, done: int) -> InputError:
    return InputError(
        f"input {part.src.name!r} has a row longer than {longest >> 20} MB (at or after data "
        f"row {(part.first_row or 1) + done}), the longest row a batch of "
        f"{part.src.batch_bytes >> 20} MB reads (a quarter of the max_batch_bytes setting); "
        "split the row's fields or raise --max-batch-bytes"
    )


def _skip_blank_rows(row: pacsv.InvalidRow) -> str:
    """Arrow's handler for a row with the wrong number of fields: skip it when it is blank."""
    return "skip" if not (row.text or "").strip() else "error"


def _csv_stream(part: Part, chunk_rows: int, block: int, skip: int) -> Iterator[pa.RecordBatch]:
    with ExitStack() as stack:
        yield from _csv_stream_in(part, chunk_rows, block, skip, stack)


def _csv_stream_in(
    part: Part, chunk_rows: int, block: int, skip: int, stack: ExitStack
) -> Iterator[pa.RecordBatch]:
    src = part.src
    at_start = part.byte_range is None or part.byte_range[0] == 0
    if part.byte_range is not None:
        start, end = part.byte_range
        source = pa.BufferReader(stack.enter_context(fs.read_range(src.path, start, end)))
    else:
        source = stack.enter_context(_open_stream(src))
    reader = pacsv.open_csv(
        source,
        read_options=pacsv.ReadOptions(
            column_names=src.columns, skip_rows=src.skip_lines if at_start else 0, block_size=block
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=src.delimiter,
            ignore_empty_lines=True,
            newlines_in_values=True,
            invalid_row_handler=_skip_blank_rows,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=src.types, strings_can_be_null=False, quoted_strings_can_be_null=False
        ),
    )
    pending: list[pa.RecordBatch] = []
    rows = size = 0
    for batch in reader:
        if skip:  # rows an earlier attempt already gave out
            cut = min(skip, batch.num_rows)
            batch, skip = batch.slice(cut), skip - cut
        if batch.num_rows:
            pending.append(batch)
            rows += batch.num_rows
            size += batch.nbytes
            if rows >= chunk_rows or size >= src.batch_bytes:
                yield _join(pending)
                pending, rows, size = [], 0, 0
    if pending:
        yield _join(pending)


def _open_stream(src: InputFile) -> pa.NativeFile:
    """The file as a stream, decompressed when its content is gzip (whatever its name says)."""
    filesystem, where = fs.arrow(src.path)
    with fs.storage(src.path):
        raw = filesystem.open_input_stream(where, compression=None)
    return pa.CompressedInputStream(raw, "gzip") if src.gzip else raw


def _join(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
