"""predictions.csv on every core: batches formatted in parallel, written in order.

pyarrow's CSV writer formats on one thread; on the scorer's tables it is the slowest stage of a
run. Here each batch is formatted to bytes on a small thread pool (Polars's CSV writer over the
batch's Arrow buffers, zero-copy, without the GIL) and the bytes are written to the stream in
the order the batches came. Batches are cut into slices of SLICE_ROWS rows, at most `ahead`
slices in flight: each formatted slice is a few MB, so memory stays small and flat.

The bytes keep the file's guarantees: the header is pyarrow's (written once, the names already
defused by csv_safety), cells arrive already made spreadsheet-safe (csv_safety.csv_safe), text
and booleans are quoted, numbers are not, floats are the shortest text that reads back to the
same value, nulls are empty. Batches with a column Polars would format differently from pyarrow
(dates, times, decimals, ...) are formatted by pyarrow's writer instead, on the same pool.

Under an address-space limit (ulimit -v) Polars is not used at all: its allocator reserves
address space well beyond what it holds and aborts the process when a reservation fails
(measured: a 30 MB allocation failing under 1 GB), so pyarrow's writer formats every slice, one
at a time (slices in flight each hold their batch and its formatted bytes: with 100 KB cells,
eight of them did not fit in 1 GB).
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache

import pyarrow as pa
import pyarrow.csv as pacsv

from batch.io.memory import limited

THREADS = max(2, min(4, os.cpu_count() or 2))  # slices formatted at once
SLICE_ROWS = 1 << 16  # rows formatted per task: small buffers, every thread busy
_PYARROW = pacsv.WriteOptions(quoting_style="needed", include_header=False)


def _fast(t: pa.DataType) -> bool:
    """Types Polars writes as the same values pyarrow does (text, integers, floats, booleans)."""
    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_null(t)
    )


@cache
def _polars_allowed() -> bool:
    """Polars formats only without an address-space limit (see above)."""
    return limited() is None


class _Pieces:
    """A write-only file that keeps what is written as the pieces it came in.

    Polars writes its CSV to a file object in pieces of about 1 MB; kept as they are, a
    formatted slice is never copied into one growing buffer and then copied out of it again
    (BytesIO.getvalue), which cost two to three times the slice's size at once per thread.
    """

    def __init__(self) -> None:
        self.pieces: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.pieces.append(bytes(data))  # a bytes object is kept as it is, not copied
        return len(data)

    def flush(self) -> None:
        pass


def format_rows(batch: pa.RecordBatch) -> list[bytes]:
    """The batch's rows as CSV bytes, without a header, in pieces to be written in order."""
    if batch.num_rows == 0:
        return []
    if _polars_allowed() and all(_fast(f.type) for f in batch.schema):
        import polars as pl  # only a run that writes CSV rows pays for the import

        # Positional names: the header is written separately, and names may repeat or be empty.
        renamed = pa.record_batch(batch.columns, names=[f"c{i}" for i in range(batch.num_columns)])
        frame = pl.from_arrow(renamed)
        assert isinstance(frame, pl.DataFrame), "a record batch converts to a data frame"
        out = _Pieces()
        frame.write_csv(out, include_header=False, quote_style="non_numeric")  # type: ignore[call-overload]
        return out.pieces
    sink = pa.BufferOutputStream()
    pacsv.write_csv(batch, sink, write_options=_PYARROW)
    return [sink.getvalue().to_pybytes()]


def header_bytes(schema: pa.Schema) -> bytes:
    """The header line exactly as pyarrow's CSV writer writes it."""
    sink = pa.BufferOutputStream()
    empty = pa.RecordBatch.from_pylist([], schema=schema)
    pacsv.write_csv(empty, sink, write_options=pacsv.WriteOptions(quoting_style="needed"))
    data: bytes = sink.getvalue().to_pybytes()
    return data


class ParallelCsvWriter:
    """A CSV file written batch by batch (the interface of pyarrow's CSVWriter that the sink
    uses: write_batch and close), formatted on `threads` threads and written in order."""

    def __init__(
        self,
        stream: pa.NativeFile,
        schema: pa.Schema,
        *,
        include_header: bool = True,
        threads: int | None = None,
        ahead: int | None = None,
    ) -> None:
        self._stream = stream
        self._schema = schema
        if threads is None:
            threads = THREADS if _polars_allowed() else 1
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="format-csv")
        if ahead is None:
            ahead = threads if _polars_allowed() else 0
        self._ahead = ahead
        self._pending: deque[Future[list[bytes]]] = deque()
        if include_header:
            stream.write(header_bytes(schema))

    def write_batch(self, batch: pa.RecordBatch) -> None:
        """Queue the batch for formatting; write finished batches, oldest first."""
        if not batch.schema.equals(self._schema):
            batch = pa.record_batch(batch.columns, schema=self._schema)
        for start in range(0, batch.num_rows, SLICE_ROWS):
            self._pending.append(self._pool.submit(format_rows, batch.slice(start, SLICE_ROWS)))
            while len(self._pending) > self._ahead:
                self._write_oldest()

    def _write_oldest(self) -> None:
        for piece in self._pending.popleft().result():
            self._stream.write(piece)

    def close(self) -> None:
        """Write every queued batch, in order; the first error is raised once the pool is shut."""
        try:
            while self._pending:
                self._write_oldest()
        finally:
            for f in self._pending:
                f.cancel()
            self._pending.clear()
            self._pool.shutdown(wait=True)
