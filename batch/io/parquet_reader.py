"""The one Parquet reader: a file's schema and exact-integer columns, its row groups, its rows.

Batches are bounded by bytes as well as rows: the rows per read come from the row groups'
uncompressed sizes plus the longest values of their dictionary pages, so one short dictionary
value repeated over many rows is decoded a few rows at a time and never becomes one huge array
(it could exceed what an Arrow array can hold, or the memory there is).
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batch.core.columns import FLOAT64_EXACT_INT, INT64_MAX, value_type
from batch.core.errors import InputError
from batch.io.read_errors import short_error
from batch.io.source import DEFAULT_LIMITS, InputFile, Limits, Part, refuse_duplicates, refuse_wide
from batch.storage import fs


def inspect_parquet(path: fs.Location, digest: str, limits: Limits = DEFAULT_LIMITS) -> InputFile:
    """The columns and types of a Parquet file, from its footer; InputError if it is not one."""
    try:
        with fs.storage(path), fs.open_input_file(path) as fh:
            pf = pq.ParquetFile(fh)
            meta = pf.metadata
            refuse_wide(path, meta.num_columns, limits)
            _check_row_counts(path, meta)
            schema = pf.schema_arrow
            exact = _exact_ints(meta, schema)
            small = _small_uint64(meta, schema)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(
            f"input {str(path)!r} is not a readable Parquet file ({short_error(exc)})"
        ) from None
    # Names are trimmed as CSV headers are, so the same data gives the same output columns.
    columns = [str(n).strip() or f"column_{i + 1}" for i, n in enumerate(schema.names)]
    refuse_duplicates(path, columns)
    renamed = {str(a): b for a, b in zip(schema.names, columns)}
    return InputFile(
        path,
        "parquet",
        columns,
        dict(zip(columns, schema.types)),
        digest,
        exact_ints=frozenset(renamed[n] for n in exact),
        small_uint64=frozenset(renamed[n] for n in small),
        renamed=columns != [str(n) for n in schema.names],
        batch_bytes=limits.batch_bytes,
    )


def _check_row_counts(path: fs.Location, meta: pq.FileMetaData) -> None:
    """InputError when the footer's row count disagrees with its row groups' (a damaged file:
    which count is right cannot be told, so neither is trusted to number rows)."""
    groups = sum(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
    if meta.num_rows != groups:
        raise InputError(
            f"input {str(path)!r} is a damaged Parquet file: its footer says {meta.num_rows:,} "
            f"rows but its row groups hold {groups:,}; write the file again"
        )


def _exact_ints(meta: pq.FileMetaData, schema: pa.Schema) -> frozenset[str]:
    """Integer columns whose every value is exact as a float64, by the row groups' statistics
    (linear in columns x row groups)."""
    exact = set()
    wide = []
    for name, t in zip(schema.names, schema.types):
        if pa.types.is_integer(t):
            (exact.add(name) if t.bit_width <= 32 else wide.append(name))
    if not wide:
        return frozenset(exact)
    ok = dict.fromkeys(wide, True)
    for _, name, stats in _statistics(meta, wide):
        if (
            stats is None
            or not stats.has_min_max
            or max(abs(stats.min), abs(stats.max)) > FLOAT64_EXACT_INT
        ):
            ok[name] = False
    exact.update(n for n, good in ok.items() if good)
    return frozenset(exact)


def _statistics(
    meta: pq.FileMetaData, names: list[str]
) -> Iterator[tuple[pq.RowGroupMetaData, str, pq.Statistics | None]]:
    """(row group, column name, its statistics or None) for each named column of each row
    group that holds rows."""
    for rg in range(meta.num_row_groups) if names else ():
        group = meta.row_group(rg)
        if not group.num_rows:
            continue
        where = {group.column(j).path_in_schema: j for j in range(group.num_columns)}
        for name in names:
            yield group, name, group.column(where[name]).statistics if name in where else None


def _small_uint64(meta: pq.FileMetaData, schema: pa.Schema) -> frozenset[str]:
    """uint64 columns whose every value fits an int64, by the row groups' statistics (a column
    without them stays uint64: nothing proves its values fit)."""
    wide = [n for n, t in zip(schema.names, schema.types) if value_type(t) == pa.uint64()]
    ok = dict.fromkeys(wide, True)
    for group, name, stats in _statistics(meta, wide):
        if stats is not None and stats.has_null_count and stats.null_count == group.num_rows:
            continue  # all null here
        if stats is None or not stats.has_min_max or stats.max > INT64_MAX:
            ok[name] = False
    return frozenset(n for n, good in ok.items() if good)


def row_group_parts(src: InputFile, file_index: int) -> list[Part]:
    """One part per row group, numbered from the row counts in the footer."""
    with fs.open_input_file(src.path) as fh:
        meta = pq.ParquetFile(fh).metadata
    parts, first = [], 1
    for group in range(meta.num_row_groups):
        parts.append(Part(file_index, group, src, first, row_groups=(group,)))
        first += meta.row_group(group).num_rows
    return parts


def parquet_batches(part: Part, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """The part's rows (its row groups, or all) in batches of at most chunk_rows rows and about
    the file's batch_bytes, columns as inspected; InputError when the rows read disagree with
    the row groups' counts (both engines number rows from those)."""
    src = part.src
    # pre_buffer=False keeps peak memory flat as files grow (with it, peak RSS grew with
    # the file: about 1 GB at 8M rows of 12 columns, against 300 MB without).
    with fs.open_input_file(src.path) as fh:
        meta = pq.ParquetFile(fh).metadata
        groups = list(part.row_groups) if part.row_groups is not None else None
        chosen = groups if groups is not None else list(range(meta.num_row_groups))
        widest = _dictionary_widths(fh, meta, chosen)
        if widest > src.batch_bytes:
            raise InputError(
                f"input {src.name!r} has a dictionary value of {widest:,} bytes, more than a "
                f"batch may hold ({src.batch_bytes >> 20} MB, the max_batch_bytes setting); "
                "split the values or raise --max-batch-bytes"
            )
        rows = _rows_per_batch(meta, chosen, chunk_rows, src.batch_bytes, widest)
        pf = pq.ParquetFile(fh, metadata=meta, pre_buffer=False, buffer_size=1 << 20)
        read = 0
        for batch in pf.iter_batches(batch_size=rows, row_groups=groups):
            read += batch.num_rows
            yield batch.rename_columns(src.columns) if src.renamed else batch
    expected = sum(meta.row_group(g).num_rows for g in chosen)
    if read != expected:
        raise InputError(
            f"input {src.name!r} is a damaged Parquet file: its row groups say {expected:,} "
            f"rows but {read:,} were read; write the file again"
        )


def _dictionary_widths(fh: pa.NativeFile, meta: pq.FileMetaData, groups: list[int]) -> int:
    """The most bytes one row's dictionary-encoded text can decode to: for each row group, the
    longest value of each column's dictionary page, summed over the columns; the largest sum.

    Row groups' sizes count a dictionary value once, however many rows repeat it; this is what
    a row may cost once decoded (one short file repeating a 1 MB value on 3,000 rows holds 3 GB).
    Read from each row group's first row, with those columns as dictionaries (their pages only).
    """
    widest = 0
    for g in groups:
        group = meta.row_group(g)
        names = sorted(
            {
                group.column(j).path_in_schema
                for j in range(group.num_columns)
                if group.column(j).has_dictionary_page and "." not in group.column(j).path_in_schema
            }
        )
        if not names or not group.num_rows:
            continue
        pf = pq.ParquetFile(fh, metadata=meta, pre_buffer=False, read_dictionary=names)
        probe = pf.iter_batches(batch_size=1, row_groups=[g], columns=names)
        first = next(probe, None)
        probe.close()
        if first is None:
            continue
        width = 0
        for col in first.columns:
            if pa.types.is_dictionary(col.type) and len(col.dictionary):
                width += pc.max(pc.binary_length(col.dictionary)).as_py() or 0
        widest = max(widest, width)
    return widest


def _rows_per_batch(
    meta: pq.FileMetaData, groups: list[int], chunk_rows: int, cap: int, widest: int
) -> int:
    """Rows per read: chunk_rows, fewer when the row groups' bytes per row (plus the widest
    dictionary values a row can decode to) would pass `cap`."""
    per_row = max(
        (
            meta.row_group(g).total_byte_size / meta.row_group(g).num_rows
            for g in groups
            if meta.row_group(g).num_rows
        ),
        default=0.0,
    )
    per_row += widest
    return max(1, min(chunk_rows, int(cap // per_row) if per_row else chunk_rows))
