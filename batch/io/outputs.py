"""Run outputs: the prediction sink, which writes a run's data files into its staging folder.

The folder itself (lock, staging, publish, failed/, LATEST) is `batch.storage.rundir`. The
prediction sink writes predictions.parquet (always a folder of Parquet parts), predictions.csv
and rejects.csv: one writer writes the final CSV files and its Parquet parts; many writers (Dask)
write CSV parts that `join_parts` turns into the final files. CSV safety (formula defusing) lives
beside the CSV writer. Text columns the plan decided are numbers are written to
predictions.parquet as float64; a later value that is not a number turns the column back to
text, restored from the row-aligned CSV text (`restore_text`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from batch.core.columns import csv_ready, with_float64
from batch.core.features import NUMBER_RE
from batch.core.stats import as_float64
from batch.io.csv_reader import CSV_BLOCK_BYTES, MAX_ROW_BYTES
from batch.storage import fs
from batch.storage.rundir import location_error, writing

log = logging.getLogger(__name__)

PREDICTIONS_PARQUET = "predictions.parquet"
PREDICTIONS_CSV = "predictions.csv"
REJECTS_CSV = "rejects.csv"
PARTS = "parts"  # CSV part files of a parts-mode run, joined and removed before publishing
STEM = "part"  # Parquet files of the run's single writer: part-00000.parquet, part-00001, ...
SINGLE_PART = f"{STEM}-00000"  # its first (usually only) Parquet file


# -- CSV safety: every cell and header a spreadsheet opens goes through here ----------------------

# Spreadsheet formula triggers (OWASP CSV injection); a cell that is a plain number is left alone.
FORMULA_RE = r"^\s*[=+\-@]|^[\t\r]"
SAFE_COLUMNS = frozenset({"model_version", "run_id"})  # written by us: vN and a run id


def defuse(column: pa.Array) -> pa.Array:
    """Prefix "'" to text cells a spreadsheet would run as a formula; plain numbers stay as they are."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column
    trigger = pc.fill_null(pc.match_substring_regex(column, FORMULA_RE), False)
    if not pc.any(trigger).as_py():
        return column  # the common case: one cheap pass, nothing to defuse
    risky = pc.and_(
        trigger, pc.invert(pc.fill_null(pc.match_substring_regex(column, NUMBER_RE), False))
    )
    quote, empty = pa.scalar("'", column.type), pa.scalar("", column.type)
    return pc.if_else(risky, pc.binary_join_element_wise(quote, column, empty), column)


def defuse_text(text: str) -> str:
    """One text value (a column name, say) defused like a cell."""
    if re.match(FORMULA_RE, text) and not re.match(NUMBER_RE, text):
        return "'" + text
    return text


def csv_safe(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch as it goes into a CSV file: every column in a type the CSV writer takes (nested
    values as JSON text, bytes as text) and every text-like cell a formula could start defused."""
    cols, fields = [], []
    for f, col in zip(batch.schema, batch.columns):
        if f.name in SAFE_COLUMNS:
            cols.append(col)
        elif f.name == "source_file" and len(col):
            # One file name per batch: check it once rather than on every row.
            first = defuse(col.slice(0, 1))[0]
            cols.append(
                col
                if first == col[0]
                else pa.repeat(pa.scalar(first.as_py(), pa.string()), len(col))
            )
        else:
            ready, text = csv_ready(col)
            cols.append(defuse(ready) if text else ready)
        fields.append(pa.field(f.name, cols[-1].type))
    return pa.record_batch(cols, schema=pa.schema(fields))


def csv_schema(schema: pa.Schema) -> pa.Schema:
    """The types csv_safe gives each column of `schema`."""
    return csv_safe(pa.RecordBatch.from_pylist([], schema=schema)).schema


def csv_header_schema(schema: pa.Schema) -> pa.Schema:
    """The schema as written to a CSV file: csv_safe's types, column names defused like cells."""
    return pa.schema([f.with_name(defuse_text(f.name)) for f in csv_schema(schema)])


# -- the prediction sink ------------------------------------------------------------------------------


class PredictionSink:
    """predictions.parquet, predictions.csv and rejects.csv of a run, written batch by batch.

    predictions.parquet is always a folder of part files, whichever engine wrote it, so one
    glob (`runs/*/predictions.parquet/*.parquet`) reads every run. part=None is the single
    writer of a run (the local engine): Parquet files part-00000.parquet, ... and the final CSV
    files, with headers. With a part name, a task writes its own Parquet files
    (<part>-00000.parquet, ...) and headerless CSV parts under `parts/`, so many processes can
    write at once; join_parts then makes the final CSV files.

    `numbers` are text columns written to Parquet as float64 (the plan's decision); the CSV
    files keep their text. Each batch is checked first (stats.as_float64): when a column's
    values are not all plain numbers that a float64 keeps exactly, the current Parquet file is
    closed and the writer goes on in the next one with that column as text. Engine.run then
    makes the column text in the earlier files too (`text_sources`, `restore_text`).
    """

    def __init__(
        self,
        folder: Path,
        schema: pa.Schema,
        rejects_schema: pa.Schema,
        part: str | None = None,
        numbers: frozenset[str] = frozenset(),
    ) -> None:
        folder = fs.path(folder)
        self.folder = folder
        opts = pacsv.WriteOptions(quoting_style="needed", include_header=part is None)
        self._stem = part or STEM
        self._schema = schema
        self._numbers = set(numbers) & set(schema.names)  # float64 in the current Parquet file
        self._file, self._file_rows = 0, 0
        parquet = self._parquet_file(0)
        if part is None:
            csv, rejects = folder / PREDICTIONS_CSV, folder / REJECTS_CSV
        else:
            csv = folder / PARTS / f"{part}.predictions.csv"
            rejects = folder / PARTS / f"{part}.rejects.csv"
        with writing(folder):
            parquet.parent.mkdir(exist_ok=True)
            csv.parent.mkdir(exist_ok=True)
        self.parquet_path = parquet  # the Parquet file being written
        self._writers: list = []
        with writing(folder):
            self._parquet = self._open(pq.ParquetWriter, parquet, self._parquet_schema())
            self._csv_schema = csv_header_schema(schema)
            self._csv = self._open(pacsv.CSVWriter, csv, self._csv_schema, write_options=opts)
            self._rejects = self._open(pacsv.CSVWriter, rejects, rejects_schema, write_options=opts)

    def _open(self, writer_class, where, *args, **kwargs):
        """A writer on a stream of the filesystem layer; the stream is closed after the writer."""
        stream = fs.open_output(where)
        self._writers.append(stream)
        writer = writer_class(stream, *args, **kwargs)
        self._writers.insert(len(self._writers) - 1, writer)
        return writer

    def write(self, predictions: pa.RecordBatch, rejects: pa.RecordBatch) -> None:
        self.write_parquet(predictions, rejects)
        self.write_csv(predictions, rejects)

    def write_parquet(self, predictions: pa.RecordBatch, rejects: pa.RecordBatch) -> None:
        """The Parquet half of write() (a pipelined sink runs each half in its own thread)."""
        batch = self._with_numbers(predictions)
        with writing(self.folder):
            self._parquet.write_batch(batch)
        self._file_rows += batch.num_rows

    def _parquet_file(self, index: int) -> Path:
        return self.folder / PREDICTIONS_PARQUET / f"{self._stem}-{index:05d}.parquet"

    def _parquet_schema(self) -> pa.Schema:
        return with_float64(self._schema, self._numbers)

    def _with_numbers(self, predictions: pa.RecordBatch) -> pa.RecordBatch:
        """The batch as the current Parquet file takes it: `numbers` as float64, checked first."""
        if not self._numbers:
            return predictions
        cols = list(predictions.columns)
        text = []
        for name in sorted(self._numbers):
            i = self._schema.get_field_index(name)
            values = as_float64(cols[i])
            if values is None:
                text.append(name)
            else:
                cols[i] = values
        if text:
            log.info(
                "column(s) %s hold a value that is not a plain number a float64 keeps "
                "exactly (at or after row %s of %s): predictions.parquet keeps them as "
                "text",
                ", ".join(text),
                _first(predictions, "source_row"),
                _first(predictions, "source_file"),
            )
            self._numbers -= set(text)
            self._next_parquet_file()
        return pa.record_batch(cols, schema=self._parquet_schema())

    def _next_parquet_file(self) -> None:
        """Close the current Parquet file and go on in the next one, with the current types."""
        at = self._writers.index(self._parquet)
        writer, stream = self._writers[at : at + 2]  # see _open
        del self._writers[at : at + 2]
        with writing(self.folder):
            writer.close()
            stream.close()
            if self._file_rows:  # an empty file is simply written again
                self._file, self._file_rows = self._file + 1, 0
            self.parquet_path = self._parquet_file(self._file)
            self._parquet = self._open(pq.ParquetWriter, self.parquet_path, self._parquet_schema())

    def write_csv(self, predictions: pa.RecordBatch, rejects: pa.RecordBatch) -> None:
        """The CSV half of write(): predictions.csv and rejects.csv, made spreadsheet-safe."""
        safe = csv_safe(predictions)
        with writing(self.folder):
            self._csv.write_batch(pa.record_batch(safe.columns, schema=self._csv_schema))
            if rejects.num_rows:
                self._rejects.write_batch(csv_safe(rejects))

    def close(self) -> None:
        """Close every writer; the first OS error (a full disk, say) is raised after all are closed."""
        first: OSError | None = None
        for w in self._writers:
            try:
                w.close()
            except OSError as exc:
                first = first or exc
        self._writers = []
        if first is not None:
            raise location_error(self.folder, first)


def _first(batch: pa.RecordBatch, name: str) -> object:
    """The batch's first value in column `name` (for a log line), '?' when there is none."""
    if name not in batch.schema.names or not batch.num_rows:
        return "?"
    return batch.column(name)[0].as_py()


def start_parts(folder: Path) -> None:
    """Prepare `folder` for part files (an empty predictions.parquet folder even with no parts)."""
    (fs.path(folder) / PREDICTIONS_PARQUET).mkdir(exist_ok=True)
    (fs.path(folder) / PARTS).mkdir(exist_ok=True)


def parquet_files(folder: Path) -> list[Path]:
    """The part files of predictions.parquet, in order."""
    return sorted((fs.path(folder) / PREDICTIONS_PARQUET).glob("*.parquet"))


def ensure_parquet(folder: Path, schema: pa.Schema) -> None:
    """At least one (empty) part in predictions.parquet, so readers always find the schema."""
    if not parquet_files(folder):
        with (
            writing(folder),
            fs.open_output(fs.path(folder) / PREDICTIONS_PARQUET / f"{SINGLE_PART}.parquet") as out,
        ):
            pq.write_table(schema.empty_table(), out)


def join_parts(folder: Path, schema: pa.Schema, rejects_schema: pa.Schema) -> None:
    """One predictions.csv and one rejects.csv (with headers) from the part files, in part order."""
    with writing(folder):
        _join_parts(fs.path(folder), schema, rejects_schema)


def _join_parts(folder: Path, schema: pa.Schema, rejects_schema: pa.Schema) -> None:
    parts = sorted((folder / PARTS).iterdir())
    header = pacsv.WriteOptions(include_header=True, quoting_style="needed")
    for kind, target, part_schema in (
        ("predictions", PREDICTIONS_CSV, schema),
        ("rejects", REJECTS_CSV, rejects_schema),
    ):
        head = pa.BufferOutputStream()
        pacsv.write_csv(csv_header_schema(part_schema).empty_table(), head, write_options=header)
        with fs.open_output(folder / target) as out:  # one stream: object stores cannot append
            out.write(head.getvalue())
            for part in parts:
                if part.name.endswith(f".{kind}.csv"):
                    with fs.open_input_stream(part) as fh:
                        while block := fh.read(1 << 20):
                            out.write(block)
    fs.rmtree(folder / PARTS)


def text_columns(folder: Path, numbers: frozenset[str] | set[str]) -> set[str]:
    """Of the columns decided to be numbers, those some Parquet file of the run holds as text."""
    found: set[str] = set()
    for path in parquet_files(folder):
        schema = _read_schema(path)
        found |= {
            n
            for n in numbers
            if n in schema.names and not pa.types.is_float64(schema.field(n).type)
        }
    return found


@dataclass(frozen=True)
class TextSource:
    """One CSV file of a run and the Parquet files written from the same rows, in order."""

    csv: str
    header: bool
    parquet: tuple[str, ...]

    @property
    def label(self) -> str:
        return fs.path(self.csv).name


def _read_schema(path: fs.Location) -> pa.Schema:
    with fs.open_input_file(path) as source:
        return pq.read_schema(source)


def text_sources(folder: Path, columns: set[str]) -> list[TextSource]:
    """The CSV files (with their Parquet files) that hold `columns` as float64 somewhere.

    A writer's Parquet files are <stem>-NNNNN.parquet: the run's single writer (stem `part`)
    wrote predictions.csv, a part's writer parts/<stem>.predictions.csv, row for row.
    """
    folder = fs.path(folder)
    groups: dict[str, list[fs.Location]] = {}
    for path in parquet_files(folder):
        groups.setdefault(path.name.removesuffix(".parquet").rsplit("-", 1)[0], []).append(path)
    sources = []
    for stem, paths in groups.items():
        if not any(
            pa.types.is_float64(schema.field(c).type)
            for schema in map(_read_schema, paths)
            for c in columns
            if c in schema.names
        ):
            continue
        csv, header = (
            (folder / PREDICTIONS_CSV, True)
            if stem == STEM
            else (folder / PARTS / f"{stem}.predictions.csv", False)
        )
        sources.append(TextSource(str(csv), header, tuple(str(p) for p in paths)))
    return sources


def restore_text(source: TextSource, columns: list[str]) -> None:
    """Rewrite the source's Parquet files that hold `columns` as float64 with those columns as
    the text of the same rows in its CSV file: exactly the text the input had.

    The CSV holds each such value as written (a plain number is never defused), and every
    value is checked to read back as the same float64 before a file is replaced. Streams with
    flat memory.
    """
    with writing(fs.path(source.csv).parent):
        _restore_text(source, columns)


def _restore_text(source: TextSource, columns: list[str]) -> None:
    names = _read_schema(fs.path(source.parquet[0])).names
    wanted = {names.index(c): c for c in columns}
    text = _CsvText(fs.path(source.csv), source.header, sorted(wanted))
    for path in map(fs.path, source.parquet):
        with fs.open_input_file(path) as stored:
            pf = pq.ParquetFile(stored, pre_buffer=False, buffer_size=1 << 20)
            redo = [i for i in wanted if pa.types.is_float64(pf.schema_arrow.field(i).type)]
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
    parsed = as_float64(text)
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
