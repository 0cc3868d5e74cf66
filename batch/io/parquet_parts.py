"""predictions.parquet's part files on every core: each part encoded on a small thread pool.

pyarrow's Parquet writer encodes a file on one thread, and on the scorer's tables (every input
column plus the added ones) that encoding is the slowest stage of a Parquet-only run. A Parquet
file cannot be split between threads, but predictions.parquet is a folder of part files: here
each part (PART_ROWS rows or PART_BYTES bytes, whichever comes first, or less at the end or at a
type change; a default-sized batch of a Boston-width table is a part) is a file of its own,
encoded and written by a pool thread (pyarrow releases the GIL while it encodes). Parts are
numbered in the order their rows came, so reading the folder in name order reads the rows in
input order. At most `ahead` parts wait or encode at once: memory stays flat.

Under an address-space limit (ulimit -v) one part is encoded at a time, as the CSV writer does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batch.io.memory import limited
from batch.storage import fs

THREADS = 2  # parts encoded at once (measured: 2.7 s for 8M rows against 4.5 s on one thread)
PART_ROWS = 1 << 18  # rows a part collects before it is encoded (narrow tables: a few batches)
PART_BYTES = 2 << 20  # or bytes: a default batch of 65,536 rows of ten numbers or more is a part


SAMPLE_ROWS = 1024  # rows a part's columns are judged by for dictionary encoding


def dictionary_columns(table: pa.Table) -> list[str] | bool:
    """The columns worth dictionary encoding: those whose first SAMPLE_ROWS rows hold at most
    half as many distinct values (codes, flags, the file name, the version); True (every column,
    Parquet's default) when a column is nested, where the choice is per leaf.

    Dictionary encoding every column (the default) built a hash table for each number and ID
    column only to fall back to plain encoding: a 65,536-row part of the scorer's Boston table
    took 50-56 ms to encode against 34 ms this way, for 18% more bytes (snappy, as before).
    """
    if any(pa.types.is_nested(f.type) for f in table.schema):
        return True
    sample = table.slice(0, SAMPLE_ROWS)
    chosen = []
    for name, column in zip(table.column_names, sample.columns):
        try:
            distinct = pc.count_distinct(column).as_py()
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):  # a type without a hash kernel
            distinct = 0
        if distinct * 2 <= len(sample):
            chosen.append(name)
    return chosen


def _write_part(where: fs.Location, table: pa.Table) -> None:
    stream = fs.open_output(where)
    try:
        with pq.ParquetWriter(
            stream, table.schema, use_dictionary=dictionary_columns(table)
        ) as writer:
            writer.write_table(table)
    finally:
        stream.close()


class ParquetParts:
    """The part files of one writer: batches in, `name_of(0)`, `name_of(1)`, ... out, in order.

    write() collects batches of one schema until PART_ROWS rows or PART_BYTES bytes, then hands
    them to the pool as one part; next_part() ends the current part early (the sink's types
    changed). close() waits for every part and raises the first error; a writer that wrote no
    row still leaves one (empty) part with its schema, so the folder always reads.
    """

    def __init__(
        self,
        name_of: Callable[[int], fs.Location],
        schema: pa.Schema,
        *,
        part_rows: int = PART_ROWS,
        part_bytes: int = PART_BYTES,
        threads: int | None = None,
    ) -> None:
        self._name_of = name_of
        self._schema = schema
        self._part_rows, self._part_bytes = part_rows, part_bytes
        parallel = limited() is None
        self._pool = ThreadPoolExecutor(
            threads or (THREADS if parallel else 1), thread_name_prefix="write-parquet-part"
        )
        self._ahead = (threads or THREADS) if parallel else 0
        self._batches: list[pa.RecordBatch] = []
        self._rows = self._bytes = 0
        self._index = 0
        self._inflight: deque[Future[None]] = deque()

    @property
    def current(self) -> fs.Location:
        """The part the next rows go to."""
        return self._name_of(self._index)

    def write(self, batch: pa.RecordBatch) -> None:
        """Add the batch to the current part (of the batch's schema: a new schema starts a new
        part); hand the part to the pool once it holds PART_ROWS rows."""
        if self._batches and not batch.schema.equals(self._schema):
            self.next_part()
        self._schema = batch.schema
        if batch.num_rows:
            self._batches.append(batch)
            self._rows += batch.num_rows
            self._bytes += batch.nbytes
        if self._rows >= self._part_rows or self._bytes >= self._part_bytes:
            self.next_part()

    def next_part(self) -> None:
        """Hand the rows collected so far to the pool as one part (nothing when there are none)."""
        if not self._rows:
            return
        table = pa.Table.from_batches(self._batches, schema=self._schema)
        self._batches, self._rows, self._bytes = [], 0, 0
        self._submit(table)

    def _submit(self, table: pa.Table) -> None:
        self._inflight.append(self._pool.submit(_write_part, self._name_of(self._index), table))
        self._index += 1
        while len(self._inflight) > self._ahead:
            self._inflight.popleft().result()

    def close(self) -> None:
        """Write the last part and wait for all; the first error is raised once the pool is shut."""
        try:
            self.next_part()
            if self._index == 0:  # no row at all: one empty part carries the schema
                self._submit(self._schema.empty_table())
            while self._inflight:
                self._inflight.popleft().result()
        finally:
            self.abandon()

    def abandon(self) -> None:
        """Stop: queued parts are dropped, the ones encoding finish (their files are in the
        staging folder, removed with it)."""
        for f in self._inflight:
            f.cancel()
        self._inflight.clear()
        self._batches, self._rows, self._bytes = [], 0, 0
        self._pool.shutdown(wait=True)
