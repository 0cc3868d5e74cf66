"""A run's data files: their names in the staging folder, and the parts many writers leave.

The folder itself (lock, staging, publish, failed/, LATEST) is `batch.storage.rundir`; the files
are written by the prediction sink (`batch.io.sink`). Many writers (Dask) write CSV parts that
`join_parts` turns into the final files.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from batch.io.csv_safety import csv_header_schema
from batch.storage import fs
from batch.storage.rundir import writing

PREDICTIONS_PARQUET = "predictions.parquet"
PREDICTIONS_CSV = "predictions.csv"
REJECTS_CSV = "rejects.csv"
PARTS = "parts"  # CSV part files of a parts-mode run, joined and removed before publishing
STEM = "part"  # Parquet files of the run's single writer: part-00000.parquet, part-00001, ...
SINGLE_PART = f"{STEM}-00000"  # its first (usually only) Parquet file


def start_parts(folder: fs.Location) -> None:
    """Prepare `folder` for part files (an empty predictions.parquet folder even with no parts)."""
    (folder / PREDICTIONS_PARQUET).mkdir(exist_ok=True)
    (folder / PARTS).mkdir(exist_ok=True)


def parquet_files(folder: fs.Location) -> list[fs.Location]:
    """The part files of predictions.parquet, in order."""
    files: list[fs.Location] = list((folder / PREDICTIONS_PARQUET).glob("*.parquet"))
    return sorted(files)


def ensure_parquet(folder: fs.Location, schema: pa.Schema) -> None:
    """At least one (empty) part in predictions.parquet, so readers always find the schema."""
    if not parquet_files(folder):
        with (
            writing(folder),
            fs.open_output(folder / PREDICTIONS_PARQUET / f"{SINGLE_PART}.parquet") as out,
        ):
            pq.write_table(schema.empty_table(), out)


def join_parts(folder: fs.Location, schema: pa.Schema, rejects_schema: pa.Schema) -> None:
    """One predictions.csv and one rejects.csv (with headers) from the part files, in part order."""
    with writing(folder):
        _join_parts(folder, schema, rejects_schema)


def _join_parts(folder: fs.Location, schema: pa.Schema, rejects_schema: pa.Schema) -> None:
    found: list[fs.Location] = list((folder / PARTS).iterdir())
    parts = sorted(found)
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
