"""One type per number column across every Parquet file of a run, chosen so no value changes.

Text columns the plan decided are numbers are written as int64 (whole numbers) or float64; a
writer that meets a decimal in an int64 column goes on with it as float64, and one that meets a
value that is not a number goes on with it as text (see sink.PredictionSink). Writers decide on
their own (Dask workers write their own part files), so at the end of the run a column may have
several types across the files. settle_types chooses one: text when any file holds text (the
files are restored from the CSV text of the same rows, batch.io.text_restore); float64 when the
files hold int64 and float64 and every int64 value is exact in a float64 (widen_file rewrites
the int64 files); text when some int64 value is not exact in a float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batch.core.columns import FLOAT64_EXACT_INT
from batch.io.outputs import parquet_files
from batch.storage import fs
from batch.storage.rundir import writing


@dataclass(frozen=True)
class Settlement:
    """What the run's Parquet files need so that each number column has one type."""

    text: frozenset[str] = frozenset()  # text in every file (restored from the CSV text)
    wider: frozenset[str] = frozenset()  # float64 in every file (int64 files cast)


def read_schema(path: fs.Location) -> pa.Schema:
    with fs.open_input_file(path) as source:
        return pq.read_schema(source)


def stored_types(folder: fs.Location, numbers: frozenset[str] | set[str]) -> dict[str, set[str]]:
    """Of the columns decided to be numbers, the types ('int64', 'double', 'string') each has
    in the run's Parquet files."""
    found: dict[str, set[str]] = {}
    for path in parquet_files(folder):
        schema = read_schema(path)
        for n in numbers:
            if n in schema.names:
                found.setdefault(n, set()).add(str(schema.field(n).type))
    return found


def settle_types(folder: fs.Location, numbers: frozenset[str] | set[str]) -> Settlement:
    """The columns to make text and the ones to widen to float64 in every Parquet file."""
    types = stored_types(folder, numbers) if numbers else {}
    text = {n for n, ts in types.items() if "string" in ts}
    mixed = {n for n, ts in types.items() if n not in text and {"int64", "double"} <= ts}
    inexact = _not_exact_in_float64(folder, mixed) if mixed else set()
    return Settlement(frozenset(text | inexact), frozenset(mixed - inexact))


def _not_exact_in_float64(folder: fs.Location, columns: set[str]) -> set[str]:
    """The columns with an int64 value in some file that a float64 would change; by the row
    groups' statistics (the column's values read one row group at a time where they lack)."""
    bad: set[str] = set()
    for path in parquet_files(folder):
        with fs.open_input_file(path) as stored:
            pf = pq.ParquetFile(stored, pre_buffer=False)
            names = pf.schema_arrow.names
            here = [c for c in columns - bad if c in names]
            here = [c for c in here if pa.types.is_int64(pf.schema_arrow.field(c).type)]
            for rg in range(pf.metadata.num_row_groups):
                group = pf.metadata.row_group(rg)
                for c in here:
                    if c not in bad and not _group_exact(pf, rg, group, names.index(c), c):
                        bad.add(c)
    return bad


def _group_exact(
    pf: pq.ParquetFile, rg: int, group: pq.RowGroupMetaData, at: int, name: str
) -> bool:
    stats = group.column(at).statistics
    if stats is not None and stats.has_min_max:
        lo, hi = stats.min, stats.max
    else:
        lo, hi = (v.as_py() for v in pc.min_max(pf.read_row_group(rg, [name]).column(0)).values())
        if lo is None:  # no values
            return True
    return bool(lo >= -FLOAT64_EXACT_INT and hi <= FLOAT64_EXACT_INT)


def files_with(folder: fs.Location, columns: set[str] | frozenset[str]) -> list[fs.Location]:
    """The run's Parquet files that hold one of `columns` as int64."""
    return [
        path
        for path in parquet_files(folder)
        if any(
            c in schema.names and pa.types.is_int64(schema.field(c).type)
            for schema in [read_schema(path)]
            for c in columns
        )
    ]


def widen_file(path: fs.Location, columns: list[str]) -> None:
    """Rewrite one Parquet file with its int64 `columns` as float64 (settle_types checked that
    every value is exact; the cast checks again). Streams with flat memory."""
    with writing(path.parent.parent):
        tmp = path.with_name(path.name + ".wide")
        with fs.open_input_file(path) as stored:
            pf = pq.ParquetFile(stored, pre_buffer=False, buffer_size=1 << 20)
            schema = pa.schema(
                [
                    f.with_type(pa.float64())
                    if f.name in columns and pa.types.is_int64(f.type)
                    else f
                    for f in pf.schema_arrow
                ]
            )
            with fs.open_output(tmp) as out, pq.ParquetWriter(out, schema) as writer:
                for batch in pf.iter_batches(batch_size=1 << 16):
                    cols = [
                        pc.cast(c, f.type) if c.type != f.type else c
                        for c, f in zip(batch.columns, schema)
                    ]
                    writer.write_batch(pa.record_batch(cols, schema=schema))
        fs.replace(tmp, path)


def written_schema(folder: fs.Location, planned: pa.Schema, numbers: frozenset[str]) -> pa.Schema:
    """The schema predictions.parquet holds once settled: `planned` with each number column's
    type as the run's Parquet files hold it (the plan's when there is no file)."""
    files = parquet_files(folder)
    if not files or not numbers:
        return planned
    stored = read_schema(files[0])
    return pa.schema(
        [
            f.with_type(stored.field(f.name).type)
            if f.name in numbers and f.name in stored.names
            else f
            for f in planned
        ]
    )
