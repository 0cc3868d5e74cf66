"""The parallel CSV writer: the same values as pyarrow's single-threaded writer, spreadsheet-safe."""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from batch.core.rules import REJECT_SCHEMA
from batch.io.csv_safety import csv_header_schema, csv_safe
from batch.io.csv_writer import ParallelCsvWriter, format_rows
from batch.io.sink import PredictionSink

TEXT = [
    "=1+2",
    'a "q" b',
    "line\nbreak",
    "",
    None,
    "ünï ✓ 数",
    "123",
    "-5",
    "@SUM(A1)",
    "\tz",
    "+3e5",
    " =x",
    "null",
    "NaN",
    "a,b;c",
    "\r\nx",
]
FLOATS = [
    math.nan,
    math.inf,
    -math.inf,
    -0.0,
    1e-310,
    0.1,
    1 / 3,
    1e300,
    5e-324,
    None,
    2.0,
    1.2345678901234568e17,
    -1.5,
    1e16,
    1e21,
    0.0,
]
N = len(TEXT)


def hostile_batch() -> pa.RecordBatch:
    """Every column type the scorer writes, with the values that have broken CSV files."""
    return pa.record_batch(
        {
            "=cmd": pa.array(TEXT),  # a header name a spreadsheet would run
            "f": pa.array(FLOATS),
            "g": pa.array([-0.0, None, math.nan, 3.4028235e38, 1e-45, 0.1, 1e-7] + [2.5] * 9).cast(
                pa.float32()
            ),
            "i": pa.array([0, None, -1, 2**63 - 1, -(2**63)] + list(range(N - 5))),
            "b": pa.array([True, False, None] + [True] * (N - 3)),
            "empty": pa.nulls(N),
            "source_file": pa.array(["=HYPERLINK(x)"] * N),
            "run_id": pa.array(["r1"] * N),
        }
    )


def old_csv(batches: list[pa.RecordBatch], path) -> None:
    """Today's (before the parallel writer) bytes: pyarrow's CSVWriter on csv_safe batches."""
    schema = csv_header_schema(batches[0].schema)
    opts = pacsv.WriteOptions(quoting_style="needed")
    with pacsv.CSVWriter(str(path), schema, write_options=opts) as w:
        for b in batches:
            w.write_batch(pa.record_batch(csv_safe(b).columns, schema=schema))


def read_back(path, schema: pa.Schema) -> pa.Table:
    """Read as a user's pyarrow would, text columns as text (nulls unquoted-empty only)."""
    return pacsv.read_csv(
        str(path),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={f.name: f.type for f in csv_header_schema(schema)},
            null_values=[""],  # pyarrow's default list would read NaN as null
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )


@pytest.mark.parametrize("threads", [1, 3])
def test_sink_csv_reads_back_as_the_old_writer_s_file(tmp_path, threads, monkeypatch):
    batch = hostile_batch()
    batches = [batch, batch.slice(3, 5), batch.slice(0, 0), batch]
    old = tmp_path / "old.csv"
    old_csv(batches, old)
    monkeypatch.setattr("batch.io.csv_writer.THREADS", threads)
    run = tmp_path / "run"
    run.mkdir()
    sink = PredictionSink(run, batch.schema, REJECT_SCHEMA)
    rejects = pa.RecordBatch.from_pylist([], schema=REJECT_SCHEMA)
    for b in batches:
        sink.write_csv(b, rejects)
    sink.close()
    new = run / "predictions.csv"

    # The header once, byte for byte as before (names defused), in the Parquet column order.
    assert new.read_bytes().split(b"\n", 1)[0] == old.read_bytes().split(b"\n", 1)[0]
    assert new.read_bytes().count(b'"\'=cmd"') == 1
    a, b = read_back(old, batch.schema), read_back(new, batch.schema)
    assert b.num_rows == 2 * N + 5
    assert a.schema == b.schema
    for name in a.column_names:
        old_vals, new_vals = a.column(name).to_pylist(), b.column(name).to_pylist()
        assert [_key(v) for v in new_vals] == [_key(v) for v in old_vals], name
    # Spreadsheet-safe: every formula-like text cell is defused; plain numbers as text stay.
    text = b.column("'=cmd").to_pylist()
    assert text[:N] == [
        "'=1+2",
        'a "q" b',
        "line\nbreak",
        "",
        None,
        "ünï ✓ 数",
        "123",
        "-5",
        "'@SUM(A1)",
        "'\tz",
        "+3e5",
        "' =x",
        "null",
        "NaN",
        "a,b;c",
        "'\r\nx",
    ]
    assert set(b.column("source_file").to_pylist()) == {"'=HYPERLINK(x)"}
    # Floats read back to the very same value (sign of zero, subnormals, NaN, inf included).
    assert [_key(v) for v in b.column("f").to_pylist()[:N]] == [_key(v) for v in FLOATS]


def _key(v: object) -> object:
    """A value with NaN comparable and the sign of zero kept."""
    if isinstance(v, float):
        return ("nan",) if math.isnan(v) else (v, math.copysign(1.0, v))
    return v


def test_writer_keeps_batch_order_and_raises_a_write_error(tmp_path, monkeypatch):
    monkeypatch.setattr("batch.io.csv_writer.SLICE_ROWS", 3)  # batches cut into slices
    schema = pa.schema([("n", pa.int64())])
    path = tmp_path / "order.csv"
    with pa.OSFile(str(path), "wb") as f:
        w = ParallelCsvWriter(f, schema, threads=4, ahead=3)
        for k in range(50):
            w.write_batch(pa.record_batch([pa.array(range(k * 10, k * 10 + 10))], schema=schema))
        w.close()
    assert pacsv.read_csv(str(path)).column("n").to_pylist() == list(range(500))

    closed = pa.OSFile(str(tmp_path / "closed.csv"), "wb")
    w = ParallelCsvWriter(closed, schema, threads=2, ahead=0)
    closed.close()
    with pytest.raises((OSError, ValueError)):
        w.write_batch(pa.record_batch([pa.array([1])], schema=schema))
        w.close()


def test_a_slice_formatted_in_pieces_is_written_whole_and_in_order(tmp_path):
    """Polars hands a slice's CSV over in pieces of about 1 MB; all of them reach the file, in
    the order they came, and the rows read back as they went in."""
    n = 60_000
    batch = pa.record_batch(
        [pa.array([f"suburb {i}" for i in range(n)]), pa.array([i / 7 for i in range(n)])],
        names=["name", "x"],
    )
    assert len(format_rows(batch)) > 1  # the case this test is about
    path = tmp_path / "pieces.csv"
    with pa.OSFile(str(path), "wb") as f:
        w = ParallelCsvWriter(f, batch.schema, threads=2)
        w.write_batch(batch)
        w.write_batch(batch.slice(0, 10))
        w.close()
    back = pacsv.read_csv(str(path))
    assert back.num_rows == n + 10
    assert back.column("name").to_pylist() == batch.column(0).to_pylist() + [
        f"suburb {i}" for i in range(10)
    ]
    assert back.column("x").to_pylist()[:n] == batch.column(1).to_pylist()
