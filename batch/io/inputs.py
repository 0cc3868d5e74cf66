"""Input files: find, sniff and stream them (one CSV reader, one Parquet reader) for every engine.

Every read error goes through one classifier (`read_error`), so both engines name a bad file the
same way. A file is streamed whole by the local engine, or in parts (Parquet row groups, CSV byte
ranges cut at line ends) by the Dask engine; both read a part with the same `iter_batches`.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import logging
import re
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from batch.core.columns import FLOAT64_EXACT_INT
from batch.core.errors import InputError
from batch.core.names import BOSTON_COLUMNS
from batch.storage import fs

log = logging.getLogger(__name__)

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
SNIFF_BYTES = 1 << 16
# 1 MB blocks: with larger ones Arrow's streaming CSV reader's peak memory grew with the file's
# length here (32 MB blocks: 0.4 GB at 1M rows, 1.1 GB at 10M); at 1 MB it stays flat (~0.2 GB)
# and reads as fast. Small blocks are joined up to chunk_rows by iter_batches.
CSV_BLOCK_BYTES = 1 << 20
# A CSV row longer than a block is read again with blocks of this size; longer rows are refused.
MAX_ROW_BYTES = 128 << 20
HASH_BLOCK = 1 << 20


def file_format(path: Path) -> str | None:
    """'csv', 'parquet' or None, from the file name."""
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


# -- finding inputs --------------------------------------------------------------------------------


def resolve_inputs(entries: list[str]) -> list[Path]:
    """Files named by --input entries: a file, a directory (supported files inside, sorted) or a glob.

    An entry may be an s3:// URL: an object, a prefix (its objects, one level) or a glob.
    """
    found: list[Path] = []
    for entry in entries:
        try:
            with fs.storage(entry):
                found.extend(_resolve(entry))
        except fs.StorageError as exc:
            raise InputError(f"cannot list input {entry!r}: {exc}") from None
    unique, seen = [], set()
    for p in found:
        key = fs.identity(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _resolve(entry: str) -> list[Path]:
    """The files of one --input entry (see resolve_inputs)."""
    found: list[Path] = []
    try:
        path = fs.path(entry).expanduser()
    except ValueError as exc:
        raise InputError(f"input {entry!r}: {exc}") from None
    if fs.is_pattern(entry):
        path = None  # only a glob there (a bucket never holds a prefix named like one)
    if path is not None and path.is_dir():
        for child in sorted(path.iterdir()):
            if child.is_file() and file_format(child) and not child.name.startswith("."):
                found.append(child)
            elif child.is_file() or child.is_dir():
                log.info("ignoring %s (not a .csv, .csv.gz, .parquet or .pq file)", child)
    elif path is not None and path.is_file():
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


# -- inspecting inputs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputFile:
    """One input file, opened far enough to know its columns (nothing is read twice)."""

    path: Path
    format: str
    columns: list[str]
    types: dict[str, pa.DataType]
    sha256: str
    size: int = 0
    mtime_ns: int = 0
    delimiter: str = ","
    has_header: bool = True
    skip_lines: int = 0  # CSV: physical lines before the data (blank lines, then the header)
    quoted: bool = False  # CSV: has a quote character (a quoted field may hold a line break)
    exact_ints: frozenset[str] = frozenset()  # Parquet: integer columns exact as float64
    renamed: bool = False  # Parquet: some stored column names were trimmed (see columns)
    empty: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.path)


def inspect(path: Path) -> InputFile:
    """Columns and types of `path`, its sha256, and (CSV) its delimiter and header; InputError if bad."""
    fmt = file_format(path)
    try:
        with fs.storage(path):
            before = path.stat()
            digest, quoted = _hash(path)
    except OSError as exc:
        raise InputError(f"cannot read input {str(path)!r}: {exc.strerror or exc}") from None
    if fmt == "parquet":
        try:
            with fs.storage(path), fs.open_input_file(path) as fh:
                pf = pq.ParquetFile(fh)
                schema = pf.schema_arrow
                exact = _exact_ints(pf.metadata, schema)
        except Exception as exc:
            raise InputError(
                f"input {str(path)!r} is not a readable Parquet file ({short_error(exc)})"
            ) from None
        # Names are trimmed as CSV headers are, so the same data gives the same output columns.
        columns = [str(n).strip() or f"column_{i + 1}" for i, n in enumerate(schema.names)]
        _refuse_duplicates(path, columns)
        renamed = {str(a): b for a, b in zip(schema.names, columns)}
        src = InputFile(
            path,
            "parquet",
            columns,
            dict(zip(columns, schema.types)),
            digest,
            exact_ints=frozenset(renamed[n] for n in exact),
            renamed=columns != [str(n) for n in schema.names],
        )
    else:
        src = _inspect_csv(path, digest)
        src = replace(src, quoted=quoted and not path.name.lower().endswith(".gz"))
    return replace(src, size=before.st_size, mtime_ns=before.st_mtime_ns)


def _hash(path: Path) -> tuple[str, bool]:
    """(sha256 of the file, whether it holds a double quote), in one pass over its bytes."""
    digest, quoted = hashlib.sha256(), False
    with fs.open_binary(path) as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
            quoted = quoted or b'"' in block
    return digest.hexdigest(), quoted


def _exact_ints(meta: pq.FileMetaData, schema: pa.Schema) -> frozenset[str]:
    """Integer columns whose every value is exact as a float64, by the row groups' statistics."""
    exact = set()
    for name, t in zip(schema.names, schema.types):
        if not pa.types.is_integer(t):
            continue
        if t.bit_width <= 32:
            exact.add(name)
            continue
        ok = True
        for rg in range(meta.num_row_groups):
            group = meta.row_group(rg)
            stats = next(
                (
                    group.column(j).statistics
                    for j in range(group.num_columns)
                    if group.column(j).path_in_schema == name
                ),
                None,
            )
            if group.num_rows and (
                stats is None
                or not stats.has_min_max
                or max(abs(stats.min), abs(stats.max)) > FLOAT64_EXACT_INT
            ):
                ok = False
                break
        if ok:
            exact.add(name)
    return frozenset(exact)


def _refuse_duplicates(path: Path, names: list[str]) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(
            f"input {str(path)!r} repeats the column name(s) "
            f"{', '.join(repr(d) for d in dupes)}; make the column names unique"
        )


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


def _head_text(path: Path) -> str:
    try:
        with fs.storage(path), fs.open_binary(path) as raw:
            gz = path.name.lower().endswith(".gz")
            with gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw as fh:
                head = fh.read(SNIFF_BYTES)
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read input {str(path)!r} ({exc})") from None
    try:
        return head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut by the sniff window
            raise InputError(
                f"input {str(path)!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV"
            ) from None
        return head[: exc.start].decode("utf-8-sig")


def _is_number(text: str) -> bool:
    try:
        float(text.strip().replace(",", ".") if text.count(",") == 1 else text)
        return True
    except ValueError:
        return False


LINE_END = re.compile(r"\r\n|\n|\r")


def _inspect_csv(path: Path, digest: str) -> InputFile:
    text = _head_text(path)
    lines = LINE_END.split(text)
    filled = [i for i, ln in enumerate(lines) if ln.strip()]
    if not filled:
        return InputFile(path, "csv", [], {}, digest, empty=True)
    first_at = filled[0]
    first = lines[first_at]
    delimiter = max([",", ";", "\t"], key=lambda d: _count_outside_quotes(first, d))
    if _count_outside_quotes(first, delimiter) == 0:
        delimiter = ","
    fields = next(csv.reader([first], delimiter=delimiter))
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
        _refuse_duplicates(path, names)
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
    )


def _count_outside_quotes(line: str, char: str) -> int:
    count, quoted = 0, False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif c == char and not quoted:
            count += 1
    return count


# -- parts: what one task streams -------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """A piece of one input file that one task reads: the whole file, row groups or a byte range.

    first_row is the 1-based data row number (within the file) of the part's first row; None
    until counted (CSV byte ranges after the first, see count_rows).
    """

    file_index: int
    index: int
    src: InputFile
    first_row: int | None = 1
    row_groups: tuple[int, ...] | None = None  # Parquet
    byte_range: tuple[int, int] | None = None  # plain CSV: [start, end), cut after a line end

    @property
    def label(self) -> str:
        return f"part {self.index} of {self.src.name!r}"


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
            with fs.open_input_file(src.path) as fh:
                meta = pq.ParquetFile(fh).metadata
            parts, first = [], 1
            for group in range(meta.num_row_groups):
                parts.append(Part(file_index, group, src, first, row_groups=(group,)))
                first += meta.row_group(group).num_rows
            return parts
        if src.path.name.lower().endswith(".gz") or src.quoted:
            # gzip cannot be cut; a quoted field may hold a line break, so a cut at a line
            # end could fall inside it.
            return [whole(src, file_index)]
        ranges = _line_ranges(src.path, src.size, part_bytes)
    except (pa.ArrowException, OSError, EOFError, ValueError) as exc:
        raise read_error(src.name, exc) from None
    return [
        Part(file_index, i, src, 1 if i == 0 else None, byte_range=r) for i, r in enumerate(ranges)
    ]


def _line_ranges(path: Path, size: int, part_bytes: int) -> list[tuple[int, int]]:
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


# -- reading -----------------------------------------------------------------------------------------


def iter_batches(part: Part, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """Stream a part in record batches of about `chunk_rows` rows; bad content raises InputError."""
    src = part.src
    if src.empty:
        return
    try:
        if src.format == "parquet":
            # pre_buffer=False keeps peak memory flat as files grow (with it, peak RSS grew with
            # the file: about 1 GB at 8M rows of 12 columns, against 300 MB without).
            with fs.open_input_file(src.path) as fh:
                pf = pq.ParquetFile(fh, pre_buffer=False, buffer_size=1 << 20)
                groups = list(part.row_groups) if part.row_groups is not None else None
                for batch in pf.iter_batches(batch_size=chunk_rows, row_groups=groups):
                    yield batch.rename_columns(src.columns) if src.renamed else batch
            return
        yield from _csv_batches(part, chunk_rows)
    except (pa.ArrowException, OSError, EOFError, ValueError, zlib.error) as exc:
        raise read_error(src.name, exc) from None


def _csv_batches(part: Part, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """The part's rows, joined into batches of about chunk_rows.

    A row longer than a read block fails Arrow's reader; then the part is read again with
    blocks of MAX_ROW_BYTES, skipping the rows already given out.
    """
    done = 0
    block = CSV_BLOCK_BYTES
    while True:
        try:
            for batch in _csv_stream(part, chunk_rows, block, skip=done):
                if block > CSV_BLOCK_BYTES:
                    _check_field_sizes(part, batch, done)
                done += batch.num_rows
                yield batch
            return
        except pa.ArrowInvalid as exc:
            if "straddling" not in str(exc) or block >= MAX_ROW_BYTES:
                raise
            log.info(
                "%s: a row is longer than %d MB; reading it with %d MB blocks",
                part.src.name,
                block >> 20,
                MAX_ROW_BYTES >> 20,
            )
            block = MAX_ROW_BYTES


def _check_field_sizes(part: Part, batch: pa.RecordBatch, done: int) -> None:
    """InputError for a field over MAX_ROW_BYTES (checked only once a long row was met)."""
    for name, col in zip(batch.schema.names, batch.columns):
        longest = pc.max(pc.binary_length(col)).as_py() or 0
        if longest > MAX_ROW_BYTES:
            raise InputError(
                f"input {part.src.name!r} has a field longer than {MAX_ROW_BYTES >> 20} MB in "
                f"column {name!r} (at or after data row {(part.first_row or 1) + done}); the "
                "scorer reads fields up to that size: split the field or drop the column"
            )


def _skip_blank_rows(row) -> str:
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
        source = stack.enter_context(fs.open_input_stream(src.path))
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
    rows = 0
    for batch in reader:
        if skip:  # rows an earlier attempt already gave out
            cut = min(skip, batch.num_rows)
            batch, skip = batch.slice(cut), skip - cut
        if batch.num_rows:
            pending.append(batch)
            rows += batch.num_rows
            if rows >= chunk_rows:
                yield _join(pending)
                pending, rows = [], 0
    if pending:
        yield _join(pending)


def _join(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


# -- the one read-error classifier --------------------------------------------------------------------


def is_read_error(exc: BaseException) -> bool:
    """True for errors that mean a file's content or its reading failed (not a bug in our code)."""
    return isinstance(
        exc, (pa.ArrowException, OSError, EOFError, ValueError, zlib.error, UnicodeDecodeError)
    )


def read_error(name: str, exc: BaseException) -> InputError:
    """The InputError that names a corrupt or unreadable input file."""
    stored = fs.classify(exc, name) if fs.is_url(name) else None
    if stored is not None:  # the store refused or went away: not the file's fault
        return InputError(f"cannot read input {name!r}: {stored}")
    return InputError(
        f"input {name!r} is corrupt or unreadable ({type(exc).__name__}: "
        f"{short_error(exc)}); fix or remove the file and run again"
    )


def short_error(exc: BaseException) -> str:
    """An exception's message on one line, cut to a readable length."""
    text = " ".join(str(exc).split())
    return text[:300]
