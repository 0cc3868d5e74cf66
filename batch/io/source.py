"""What an input is (`InputFile`, as inspected) and what one task reads of it (`Part`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from batch.core.errors import InputError
from batch.core.quoting import excerpt
from batch.storage import fs

# The defaults of the settings max_batch_bytes and max_columns (batch.settings.model). 32 MB
# batches keep a scoring run inside 1 GB of address space with room to spare (measured at peak on
# issue 21's hostile files: about 0.85 GB; with 64 MB, 0.93 to 1.0 GB) and do not shorten the
# default 65,536-row batches of a Boston-width file (about 10 MB as text).
BATCH_BYTES = 32 << 20
MAX_COLUMNS = 10_000
# Column names quoted in one sentence at most (a file may have thousands).
NAMES_QUOTED = 20


@dataclass(frozen=True)
class Limits:
    """What one input file may cost: bytes per batch (and per row), and columns."""

    batch_bytes: int = BATCH_BYTES
    max_columns: int = MAX_COLUMNS


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class InputFile:
    """One input file, opened far enough to know its columns (nothing is read twice)."""

    path: fs.Location
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
    small_uint64: frozenset[str] = frozenset()  # Parquet: uint64 columns whose values fit int64
    renamed: bool = False  # Parquet: some stored column names were trimmed (see columns)
    empty: bool = False
    notes: list[str] = field(default_factory=list)
    gzip: bool = False  # CSV: gzip-compressed (by its content: the magic bytes 1f 8b)
    batch_bytes: int = BATCH_BYTES  # a batch read from this file holds at most about this

    @property
    def name(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class Part:
    """A piece of one input file that one task reads: the whole file, row groups or a byte range.

    first_row is the 1-based data row number (within the file) of the part's first row; None
    until counted (CSV byte ranges after the first, see inputs.count_rows).
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


def refuse_duplicates(path: fs.Location, names: list[str]) -> None:
    """InputError when a file's column names (as the scorer sees them) repeat (linear time)."""
    seen: set[str] = set()
    dupes: set[str] = set()
    for n in names:
        (dupes if n in seen else seen).add(n)
    if dupes:
        raise InputError(
            f"input {excerpt(str(path), 200)!r} repeats the column name(s) "
            f"{quote_names(sorted(dupes))}; make the column names unique"
        )


def quote_names(names: list[str]) -> str:
    """Column names for a sentence: short escaped excerpts, the first NAMES_QUOTED of them."""
    shown = ", ".join(repr(excerpt(n)) for n in names[:NAMES_QUOTED])
    more = len(names) - NAMES_QUOTED
    return f"{shown} and {more:,} more" if more > 0 else shown


def refuse_wide(path: fs.Location, columns: int, limits: Limits) -> None:
    """InputError when a file has more columns than the max_columns setting allows."""
    if columns > limits.max_columns:
        raise InputError(
            f"input {excerpt(str(path), 200)!r} has {columns:,} columns, more than the "
            f"{limits.max_columns:,} allowed; drop columns from the file or raise "
            "--max-columns / BATCH_MAX_COLUMNS"
        )
