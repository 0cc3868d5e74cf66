"""Number columns made text again: Parquet files rewritten from the row-aligned CSV text.

Text columns the plan decided are numbers are written to predictions.parquet as int64 or
float64; a later value that is not a number turns the column back to text (see
sink.PredictionSink and batch.io.settle), and the Parquet files written before that are
restored here from the CSV text of the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from batch.core.number_text import as_float64, as_int64
from batch.io.csv_reader import CSV_BLOCK_BYTES, MAX_ROW_BYTES
from batch.io.outputs import PARTS, PREDICTIONS_CSV, STEM, parquet_files
from batch.io.settle import read_schema
from batch.storage import fs
from batch.storage.rundir import writing


@dataclass(frozen=True)
class TextSource:
    """One CSV file of a run and the Parquet files written from the same rows, in order."""

    csv: fs.Location
    header: bool
    parquet: tuple[fs.Location, ...]

    @property
    def label(self) -> str:
        return self.csv.name


def text_sources(folder: fs.Location, columns: set[str]) -> list[TextSource]:
    """The CSV files (with their Parquet files) that hold `columns` as numbers somewhere.

    A writer's Parquet files are <stem>-NNNNN.parquet: the run's single writer (stem `part`)
    wrote predictions.csv, a part's writer parts/<stem>.predictions.csv, row for row.
    """
    groups: dict[str, list[fs.Location]] = {}
    for path in parquet_files(folder):
        groups.setdefault(path.name.removesuffix(".parquet").rsplit("-", 1)[0], []).append(path)
    sources = []
    for stem, paths in groups.items():
        if not any(
            not pa.types.is_string(schema.field(c).type)
            for schema in map(read_schema, paths)
            for c in columns
            if c in schema.names
        ):
            continue
        csv, header = (
            (folder / PREDICTIONS_CSV, True)
            if stem == STEM
            else (folder / PARTS / f"{stem}.predictions.csv", False)
        )
        sources.append(TextSource(csv, header, tuple(paths)))
    return sources


def restore_text(source: TextSource, columns: list[str]) -> None:
    """Rewrite the source's Parquet files that hold `columns` as numbers (int64 or float64) with
    those columns as the text of the same rows in its CSV file: exactly the text the input had.

    The CSV holds each such value as written (a plain number is never defused), and every
    value is checked to read back as the same number before a file is replaced. Streams with
    flat memory.
    """
    with writing(source.csv.parent):
        _restore_text(source, columns)


def _restore_text(source: TextSource, columns: list[str]) -> None:
    names = read_schema(source.parquet[0]).names
    wanted = {names.index(c): c for c in columns}
    text = _CsvText(source.csv, source.header, sorted(wanted))
    for path in source.parquet:
        with fs.open_input_file(path) as stored:
            pf = pq.ParquetFile(stored, pre_buffer=False, buffer_size=1 << 20)
            redo = [i for i in wanted if not pa.types.is_string(pf.schema_arrow.field(i).type)]
            if not redo:
                text.skip(pf.metadata.num_rows)
                continue
            tmp = path.with_name(path.name + ".text")
            _restore_file(pf, tmp, redo, text, f"{wanted} in {source.csv} and {path.name}")
        fs.replace(tmp, path)
    text.finish()


def _restore_file(
    pf: pq.ParquetFile, tmp: fs.Location, redo: list[int], text: _CsvText, where: str
) -> None:
    """Write `pf` to `tmp` with the columns at positions `redo` taken from `text`."""
    schema = pa.schema(
        [f.with_type(pa.string()) if i in redo else f for i, f in enumerate(pf.schema_arrow)]
    )
    with fs.open_output(tmp) as out, pq.ParquetWriter(out, schema) as writer:
        for batch in pf.iter_batches(batch_size=1 << 16):
            rows = text.take(batch.num_rows)
            cols = list(batch.columns)
            for i in redo:
                if not _same_numbers(rows[i], cols[i]):
                    raise RuntimeError(
                        f"the CSV text of the columns {where} does not match "
                        "the Parquet values; rows are misaligned"
                    )
                cols[i] = rows[i]
            writer.write_batch(pa.record_batch(cols, schema=schema))


def _same_numbers(text: pa.Array, values: pa.Array) -> bool:
    """True when `text` reads as exactly `values` (trimmed, '' as null), cell for cell."""
    parsed = as_int64(text) if pa.types.is_int64(values.type) else as_float64(text)
    return parsed is not None and parsed.equals(values)


class _CsvText:
    """Some columns of a CSV file the sink wrote, as text, row after row."""

    def __init__(self, path: fs.Location, header: bool, positions: list[int]) -> None:
        self.path = path
        self._positions = positions
        self._batches = self._read()
        self._pending: list[pa.RecordBatch] = []
        self._rows = 0
        if header:
            self.take(1)

    def _open(self, stream: pa.NativeFile, block: int) -> pacsv.CSVStreamingReader:
        return pacsv.open_csv(
            stream,
            # The header is read as a row (and dropped): a quoted name may span lines.
            read_options=pacsv.ReadOptions(autogenerate_column_names=True, block_size=block),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                include_columns=[f"f{i}" for i in self._positions],
                column_types={f"f{i}": pa.string() for i in self._positions},
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )

    def _read(self) -> Iterator[pa.RecordBatch]:
        """The file's rows in batches. A row longer than a block is read again with larger
        blocks, skipping the rows already given out (as inputs reads inputs); a written row is
        at most about twice its input row, which was at most MAX_ROW_BYTES."""
        given, block = 0, CSV_BLOCK_BYTES
        while True:
            try:
                skip = given
                with fs.open_input_stream(self.path) as stream:
                    for batch in self._open(stream, block):
                        cut = min(skip, batch.num_rows)
                        skip -= cut
                        if batch.num_rows > cut:
                            given += batch.num_rows - cut
                            yield batch.slice(cut)
                return
            except pa.ArrowInvalid as exc:
                if "straddling" not in str(exc) or block > CSV_BLOCK_BYTES:
                    raise
                block = 2 * MAX_ROW_BYTES + CSV_BLOCK_BYTES

    def _fill(self, n: int) -> None:
        while self._rows < n:
            batch = next(self._batches, None)
            if batch is None:
                raise RuntimeError(
                    f"{self.path} has fewer rows than predictions.parquet; rows are misaligned"
                )
            self._pending.append(batch)
            self._rows += batch.num_rows

    def take(self, n: int) -> dict[int, pa.Array]:
        """The next n rows: column position -> text."""
        self._fill(n)
        table = pa.Table.from_batches(self._pending)
        head, rest = table.slice(0, n), table.slice(n)
        self._pending = rest.to_batches() if rest.num_rows else []
        self._rows -= n
        return {p: head.column(f"f{p}").combine_chunks() for p in self._positions}

    def skip(self, n: int) -> None:
        while n:
            step = min(n, 1 << 16)
            self.take(step)
            n -= step

    def finish(self) -> None:
        """RuntimeError unless every row was used (the CSV and the Parquet files align)."""
        extra = self._rows + sum(b.num_rows for b in self._batches)
        if extra:
            raise RuntimeError(
                f"{self.path} has {extra} more row(s) than predictions.parquet; rows are misaligned"
            )
