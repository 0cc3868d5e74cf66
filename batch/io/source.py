"""What an input is (`InputFile`, as inspected) and what one task reads of it (`Part`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from batch.core.errors import InputError
from batch.storage import fs


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
    renamed: bool = False  # Parquet: some stored column names were trimmed (see columns)
    empty: bool = False
    notes: list[str] = field(default_factory=list)

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
    """InputError when a file's column names (as the scorer sees them) repeat."""
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(
            f"input {str(path)!r} repeats the column name(s) "
            f"{', '.join(repr(d) for d in dupes)}; make the column names unique"
        )
