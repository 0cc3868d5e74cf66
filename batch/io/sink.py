"""The prediction sink: predictions.parquet, predictions.csv and rejects.csv, batch by batch."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from batch.core.columns import FLOAT64_EXACT_INT, with_numbers
from batch.core.number_text import as_float64, as_int64, convert_each
from batch.io.csv_safety import csv_header_schema, csv_safe
from batch.io.csv_writer import ParallelCsvWriter
from batch.io.outputs import PARTS, PREDICTIONS_CSV, PREDICTIONS_PARQUET, REJECTS_CSV, STEM
from batch.io.parquet_parts import ParquetParts
from batch.storage import fs
from batch.storage.rundir import writing

log = logging.getLogger(__name__)

W = TypeVar("W")


class PredictionSink:
    """predictions.parquet, predictions.csv and rejects.csv of a run, written batch by batch.

    predictions.parquet is always a folder of part files, whichever engine wrote it, so one
    glob (`runs/*/predictions.parquet/*.parquet`) reads every run. part=None is the single
    writer of a run (the local engine): Parquet files part-00000.parquet, ... and the final CSV
    files, with headers. With a part name, a task writes its own Parquet files
    (<part>-00000.parquet, ...) and headerless CSV parts under `parts/`, so many processes can
    write at once; join_parts then makes the final CSV files.

    `numbers` are text columns written to Parquet as numbers (the plan's decision): int64 for
    those in `integers`, float64 for the others; the CSV files keep their text. Each batch is
    checked first (number_text.as_int64, number_text.as_float64). When an int64 column's values
    are not all whole numbers but are numbers a float64 keeps exactly, and every integer it wrote is
    exact in a float64, the current Parquet part ends and the next one has the column as
    float64; when a column's values are not such numbers at all, the next part has it as text.
    Engine.run then gives the column that type in the earlier files too (batch.io.settle).
    Parts are encoded on a small thread pool (batch.io.parquet_parts).

    `formats` (the output_formats setting) says which prediction files the run keeps: "both",
    "parquet" or "csv". rejects.csv is always written. A Parquet-only run that has `numbers`
    still writes the CSV text (text_restore may need it); keep_formats removes it at the end.
    """

    def __init__(
        self,
        folder: fs.Location,
        schema: pa.Schema,
        rejects_schema: pa.Schema,
        part: str | None = None,
        numbers: frozenset[str] = frozenset(),
        formats: str = "both",
        integers: frozenset[str] = frozenset(),
    ) -> None:
        self.folder = folder
        self._with_parquet = formats != "csv"
        numbers = numbers if self._with_parquet else frozenset()
        self._with_csv = formats != "parquet" or bool(numbers)
        opts = pacsv.WriteOptions(quoting_style="needed", include_header=part is None)
        self._stem = part or STEM
        self._schema = schema
        self._numbers = set(numbers) & set(schema.names)  # numbers in the current Parquet file
        self._integers = set(integers) & self._numbers  # of those, the int64 ones
        self._int_range: dict[str, tuple[int, int]] = {}  # the int64 values written so far
        parquet = self._parquet_file(0)
        if part is None:
            csv, rejects = folder / PREDICTIONS_CSV, folder / REJECTS_CSV
        else:
            csv = folder / PARTS / f"{part}.predictions.csv"
            rejects = folder / PARTS / f"{part}.rejects.csv"
        with writing(folder):
            if self._with_parquet:
                parquet.parent.mkdir(exist_ok=True)
            csv.parent.mkdir(exist_ok=True)
        self._writers: list[Any] = []  # writers and their streams, closed in this order
        try:
            with writing(folder):
                self._parquet = (
                    ParquetParts(self._parquet_file, self._parquet_schema())
                    if self._with_parquet
                    else None
                )
                if self._parquet is not None:
                    self._writers.append(self._parquet)
                self._csv_schema = csv_header_schema(schema)
                self._csv = (
                    self._open(
                        ParallelCsvWriter, csv, self._csv_schema, include_header=part is None
                    )
                    if self._with_csv
                    else None
                )
                self._rejects = self._open(
                    pacsv.CSVWriter, rejects, rejects_schema, write_options=opts
                )
        except BaseException:
            self._abandon()  # no caller gets a sink to close: shut what was opened
            raise

    def _abandon(self) -> None:
        """Close every writer opened so far, quietly: an error is already on its way out."""
        for w in self._writers:
            try:
                getattr(w, "abandon", w.close)()  # Parquet parts not yet written are dropped
            except Exception:  # the error on its way out is the one to report
                pass
        self._writers = []

    def _open(
        self, writer_class: Callable[..., W], where: fs.Location, *args: Any, **kwargs: Any
    ) -> W:
        """A writer on a stream of the filesystem layer; the stream is closed after the writer."""
        stream = fs.open_output(where)
        self._writers.append(stream)  # closed by close() or _abandon() even if the writer fails
        writer = writer_class(stream, *args, **kwargs)
        self._writers.insert(len(self._writers) - 1, writer)
        return writer

    def write(self, predictions: pa.RecordBatch, rejects: pa.RecordBatch) -> None:
        self.write_parquet(predictions, rejects)
        self.write_csv(predictions, rejects)

    def write_parquet(self, predictions: pa.RecordBatch, rejects: pa.RecordBatch) -> None:
        """The Parquet half of write() (a pipelined sink runs each half in its own thread)."""
        if self._parquet is None:
            return
        batch = self._with_numbers(predictions)
        with writing(self.folder):
            self._parquet.write(batch)

    def _parquet_file(self, index: int) -> fs.Location:
        return self.folder / PREDICTIONS_PARQUET / f"{self._stem}-{index:05d}.parquet"

    def _parquet_schema(self) -> pa.Schema:
        return with_numbers(self._schema, self._numbers, self._integers)

    def _with_numbers(self, predictions: pa.RecordBatch) -> pa.RecordBatch:
        """The batch as the current Parquet file takes it: `numbers` as int64 or float64,
        checked first."""
        if not self._numbers:
            return predictions
        cols = list(predictions.columns)
        text, wider = [], []
        names = sorted(self._numbers)
        where = {name: self._schema.get_field_index(name) for name in names}
        # Each kind converted in one go (number_text.convert_each), then looked at column by column.
        converted: dict[str, pa.Array | None] = {}
        for convert, kind in ((as_float64, False), (as_int64, True)):
            group = [n for n in names if (n in self._integers) == kind]
            converted.update(zip(group, convert_each(convert, [cols[where[n]] for n in group])))
        for name in names:
            i = where[name]
            if name not in self._integers:
                values = converted[name]
            elif (values := self._noted(name, converted[name])) is None and self._exact_so_far(
                name
            ):
                values = as_float64(cols[i])  # a decimal: float64, if no value changes
                if values is not None:
                    wider.append(name)
            if values is None:
                text.append(name)
            else:
                cols[i] = values
        for names, what in ((wider, "float64"), (text, "text")):
            if names:
                log.info(
                    "column(s) %s hold a value that is not %s (at or after row %s of %s): "
                    "predictions.parquet keeps them as %s",
                    ", ".join(names),
                    "a whole number" if what == "float64" else "a plain number a float64 keeps",
                    _first(predictions, "source_row"),
                    _first(predictions, "source_file"),
                    what,
                )
        if text or wider:  # the rows so far stay in their parts; the next part has the new types
            self._numbers -= set(text)
            self._integers -= set(text) | set(wider)
            if self._parquet is not None:
                with writing(self.folder):
                    self._parquet.next_part()
        return pa.record_batch(cols, schema=self._parquet_schema())

    def _noted(self, name: str, values: pa.Array | None) -> pa.Array | None:
        """Column `name` as int64 (number_text.as_int64; None when it is not all whole numbers), the
        range of the values written noted."""
        if values is None:
            return None
        lo, hi = pc.min_max(values).values()
        if lo.is_valid:
            old = self._int_range.get(name, (lo.as_py(), hi.as_py()))
            self._int_range[name] = (min(old[0], lo.as_py()), max(old[1], hi.as_py()))
        return values

    def _exact_so_far(self, name: str) -> bool:
        """True when every int64 value written in column `name` is exact in a float64."""
        lo, hi = self._int_range.get(name, (0, 0))
        return lo >= -FLOAT64_EXACT_INT and hi <= FLOAT64_EXACT_INT

    def write_csv(self, predictions: pa.RecordBatch, rejects: pa.RecordBatch) -> None:
        """The CSV half of write(): predictions.csv and rejects.csv, made spreadsheet-safe."""
        with writing(self.folder):
            if self._csv is not None:
                safe = csv_safe(predictions)
                self._csv.write_batch(pa.record_batch(safe.columns, schema=self._csv_schema))
            if rejects.num_rows:
                self._rejects.write_batch(csv_safe(rejects))

    def close(self) -> None:
        """Close every writer; the first error (a full disk, an object store gone) is raised once
        all are shut, as the one-sentence exit-7 fault when it is the location's (closing a
        stream on object storage uploads its last part: botocore and aiohttp errors arrive here
        as they are, not as OSError)."""
        first: Exception | None = None
        for w in self._writers:
            try:
                w.close()
            except Exception as exc:
                first = first or exc
        self._writers = []
        if first is not None:
            with writing(self.folder):
                raise first


def _first(batch: pa.RecordBatch, name: str) -> object:
    """The batch's first value in column `name` (for a log line), '?' when there is none."""
    if name not in batch.schema.names or not batch.num_rows:
        return "?"
    return batch.column(name)[0].as_py()


def keep_formats(folder: fs.Location, formats: str) -> None:
    """Remove the prediction file the run was not asked for (`formats`: both, parquet or csv)
    from its finished staging folder; rejects.csv always stays."""
    with writing(folder):
        if formats == "parquet":
            (folder / PREDICTIONS_CSV).unlink(missing_ok=True)
        elif formats == "csv" and (folder / PREDICTIONS_PARQUET).exists():
            fs.rmtree(folder / PREDICTIONS_PARQUET)
