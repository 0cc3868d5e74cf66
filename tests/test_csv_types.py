"""CSV column types decided once, at plan time: whole numbers become int64 and other numbers
float64 with no rewrite; a later decimal widens an int64 column to float64 and a later value
that is not a number keeps its column text, every value exactly as in the input."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from batch.core.features import DECIMAL_COMMA_RE
from batch.core.number_text import as_float64, as_int64
from batch.core.rules import REJECT_SCHEMA
from batch.engines.local import LocalEngine
from batch.io import outputs, settle, text_restore
from batch.io.sink import PredictionSink
from tests.scoring_helpers import engine_run

REWROTE = "rewrote the Parquet files"
# Number texts a float64 keeps exactly, written in many ways (the CSV must keep each as it came).
FORMS = ["6.50", " 7", "+3", "1e5", "0.30000000000000004", "", "-0", ".5", "5.", "1E-3", "42"]


def input_text(path: Path, column: str, delimiter: str = ",") -> list[str]:
    """A column of an input CSV exactly as the scorer reads it (text, '' for an empty cell)."""
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=16 << 20),
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(
            column_types={column: pa.string()}, strings_can_be_null=False
        ),
    )
    return table.column(column).to_pylist()


def parquet(staged: Path) -> pa.Table:
    return pq.read_table(staged / outputs.PREDICTIONS_PARQUET)


def part_names(staged: Path) -> list[str]:
    return [p.name for p in outputs.parquet_files(staged)]


def expected(staged: Path, path: Path, column: str, delimiter: str = ",") -> list[str]:
    """The input's text of `column` on every scored row, in output order; an empty cell is
    null, as predictions.parquet stores empty text."""
    text = input_text(path, column, delimiter)
    table = parquet(staged)
    rows = [
        r
        for f, r in zip(
            table.column("source_file").to_pylist(), table.column("source_row").to_pylist()
        )
        if f == str(path)
    ]
    return [text[r - 1] or None for r in rows]


def write_rows(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def points(text: str | None) -> str | None:
    """A decimal comma written with a point, as the scorer writes it ('6,5' -> '6.5')."""
    if text is None:
        return None
    return text.replace(",", ".") if re.match(DECIMAL_COMMA_RE, text) else text


def long_csv(path: Path, n: int, bad_at: int | None, sep: str = ",") -> Path:
    """n rows: rm (every 97th rejected), price in many number forms, a code column, medv;
    row `bad_at` (1-based) holds 'n/a' as its price. A ';' file has decimal commas in every
    other row's decimals."""
    rows = []
    for i in range(1, n + 1):
        rm = "n/a" if i % 97 == 0 else f"{4 + i % 40 / 10}"
        price = "n/a" if i == bad_at else FORMS[i % len(FORMS)]
        if sep == ";":
            rm = rm.replace(".", ",")
            if i % 2 and re.fullmatch(r"\s*[+-]?\d+\.\d+\s*", price):
                price = price.replace(".", ",")
        rows.append(sep.join([rm, price, f"c{i % 7}", str(10 + i % 30)]))
    return write_rows(path, sep.join(["rm", "price", "code", "medv"]), rows)


# -- the pieces, without an engine --------------------------------------------------------------


def test_as_float64_takes_only_numbers_a_float64_keeps():
    got = as_float64(pa.array(["1", " 2.5 ", "", None, "-3e2"]))
    assert got.type == pa.float64() and got.to_pylist() == [1.0, 2.5, None, None, -300.0]
    for bad in (["1", "n/a"], ["02134"], ["12345678901234567"], ["1e400"]):
        assert as_float64(pa.array(bad)) is None, bad
    assert as_float64(pa.array([], pa.string())).to_pylist() == []  # no value contradicts


def test_a_sink_moves_to_a_new_file_and_restore_gives_back_the_csv_text(tmp_path):
    schema = pa.schema([("x", pa.string()), ("y", pa.string())])
    sink = PredictionSink(tmp_path, schema, REJECT_SCHEMA, numbers=frozenset({"x", "y"}))
    empty = pa.RecordBatch.from_pylist([], schema=REJECT_SCHEMA)
    batches = [["1.50", " 2", ""], ["3", "4"], ["5", "n/a"], ["6.0", "7"]]
    for i, xs in enumerate(batches):
        sink.write(
            pa.record_batch([pa.array(xs), pa.array([str(i)] * len(xs))], schema=schema), empty
        )
    sink.close()
    assert part_names(tmp_path) == ["part-00000.parquet", "part-00001.parquet"]
    first, second = (pq.read_table(p) for p in outputs.parquet_files(tmp_path))
    assert first.schema.field("x").type == pa.float64()
    assert first.column("x").to_pylist() == [1.5, 2.0, None, 3.0, 4.0]
    assert second.schema.field("x").type == pa.string()
    assert second.schema.field("y").type == pa.float64()  # y never contradicted: still numbers

    assert settle.settle_types(tmp_path, {"x", "y"}).text == {"x"}
    sources = text_restore.text_sources(tmp_path, {"x"})
    assert [s.csv for s in sources] == [tmp_path / "predictions.csv"]
    text_restore.restore_text(sources[0], ["x"])
    table = pq.read_table(tmp_path / "predictions.parquet")
    assert table.schema.field("x").type == pa.string()
    assert table.column("x").to_pylist() == [x for xs in batches for x in xs]
    assert table.column("y").to_pylist() == [float(i) for i, xs in enumerate(batches) for _ in xs]


def test_restore_refuses_a_csv_that_does_not_match_the_parquet_rows(tmp_path):
    schema = pa.schema([("x", pa.string())])
    sink = PredictionSink(tmp_path, schema, REJECT_SCHEMA, numbers=frozenset({"x"}))
    empty = pa.RecordBatch.from_pylist([], schema=REJECT_SCHEMA)
    sink.write(pa.record_batch([pa.array(["1", "2"])], schema=schema), empty)
    sink.write(pa.record_batch([pa.array(["x"])], schema=schema), empty)
    sink.close()
    before = (tmp_path / "predictions.parquet" / "part-00000.parquet").read_bytes()
    (tmp_path / "predictions.csv").write_text('"x"\n"1"\n"3"\n"x"\n')  # row 2 differs
    with pytest.raises(RuntimeError, match="misaligned"):
        text_restore.restore_text(text_restore.text_sources(tmp_path, {"x"})[0], ["x"])
    assert (tmp_path / "predictions.parquet" / "part-00000.parquet").read_bytes() == before


# -- whole runs ---------------------------------------------------------------------------------


def test_numbers_are_typed_from_the_start_with_no_rewrite(tmp_path, caplog):
    path = long_csv(tmp_path / "a.csv", 5_000, None)
    with caplog.at_level(logging.INFO):
        plan, result = engine_run([str(path)], tmp_path / "s", 1_000)
    assert plan.numbers == {"price", "rm", "medv"} and "code" not in plan.numbers
    assert part_names(tmp_path / "s") == ["part-00000.parquet"]
    assert REWROTE not in caplog.text  # the file the sink wrote is the one published
    assert settle.settle_types(tmp_path / "s", plan.numbers) == settle.Settlement()
    table = parquet(tmp_path / "s")
    assert table.schema.field("price").type == pa.float64()
    assert plan.integers == {"medv"} and table.schema.field("medv").type == pa.int64()
    assert table.schema.field("code").type == pa.string()
    want = [None if t is None else float(t) for t in expected(tmp_path / "s", path, "price")]
    assert table.column("price").to_pylist() == want
    csv = pacsv.read_csv(
        tmp_path / "s" / "predictions.csv",
        convert_options=pacsv.ConvertOptions(
            column_types={"price": pa.string()}, strings_can_be_null=False
        ),
    )
    assert csv.column("price").to_pylist() == [
        t or "" for t in expected(tmp_path / "s", path, "price")
    ]


@pytest.mark.parametrize("pipeline", [True, False])
def test_a_late_non_number_keeps_the_column_text_exactly(tmp_path, caplog, pipeline):
    path = long_csv(tmp_path / "a.csv", 120_000, bad_at=100_000)
    with caplog.at_level(logging.INFO):
        plan, result = engine_run(
            [str(path)], tmp_path / "s", 8_192, LocalEngine(60.0, pipeline=pipeline)
        )
    assert "price" in plan.numbers  # decided from the first block...
    assert part_names(tmp_path / "s") == ["part-00000.parquet", "part-00001.parquet"]
    assert REWROTE in caplog.text  # ...and made text in the file written before 'n/a'
    table = parquet(tmp_path / "s")
    assert table.schema.field("price").type == pa.string()
    assert table.column("price").to_pylist() == expected(tmp_path / "s", path, "price")
    assert "n/a" in table.column("price").to_pylist()
    assert table.schema.field("medv").type == pa.int64()  # other decisions stand
    assert table.num_rows == result.stats.scored == 120_000 - 120_000 // 97


def test_pipelined_and_sequential_runs_agree_after_a_contradiction(tmp_path):
    path = long_csv(tmp_path / "a.csv", 90_000, bad_at=70_001)
    for pipeline in (True, False):
        engine_run(
            [str(path)], tmp_path / f"s{int(pipeline)}", 5_000, LocalEngine(60.0, pipeline=pipeline)
        )
    for name in ("predictions.csv", "rejects.csv", *part_names(tmp_path / "s1")):
        where = name if name.endswith(".csv") else f"predictions.parquet/{name}"
        assert (tmp_path / "s0" / where).read_bytes() == (tmp_path / "s1" / where).read_bytes()


def test_a_column_that_contradicts_in_one_of_two_files(tmp_path, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    a = long_csv(folder / "a.csv", 3_000, None)
    b = long_csv(folder / "b.csv", 80_000, bad_at=75_000)
    with caplog.at_level(logging.INFO):
        plan, _ = engine_run([str(folder)], tmp_path / "s", 4_000)
    assert "price" in plan.numbers and REWROTE in caplog.text
    table = parquet(tmp_path / "s")
    assert table.schema.field("price").type == pa.string()
    assert table.column("price").to_pylist() == (
        expected(tmp_path / "s", a, "price") + expected(tmp_path / "s", b, "price")
    )

    # Text already in the second file's first block: decided text at plan time, nothing rewritten.
    c = long_csv(folder / "c.csv", 2_000, bad_at=10)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        plan, _ = engine_run([str(a), str(c)], tmp_path / "t", 4_000)
    assert "price" not in plan.numbers and REWROTE not in caplog.text
    assert part_names(tmp_path / "t") == ["part-00000.parquet"]
    assert parquet(tmp_path / "t").column("price").to_pylist() == (
        expected(tmp_path / "t", a, "price") + expected(tmp_path / "t", c, "price")
    )


def test_a_parquet_integer_a_float64_cannot_hold_stays_int64_with_csv_integers(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    a = write_rows(folder / "a.csv", "rm,n", [f"6,{i}" for i in range(100)])
    n = np.arange(70_000, dtype="int64")
    n[-1] = 2**53 + 1  # after the first block: only the check on write sees it
    pq.write_table(pa.table({"rm": np.full(70_000, 6.0), "n": n}), folder / "b.parquet")
    plan, _ = engine_run([str(folder)], tmp_path / "s", 10_000)
    assert "n" in plan.integers  # whole numbers in CSV and Parquet alike: int64
    table = parquet(tmp_path / "s")
    assert table.schema.field("n").type == pa.int64()
    assert table.column("n").to_pylist() == [int(t) for t in input_text(a, "n")] + n.tolist()


def test_decimal_comma_files_keep_their_points_and_their_text(tmp_path, caplog):
    path = long_csv(tmp_path / "komma.csv", 70_000, None, sep=";")
    plan, _ = engine_run([str(path)], tmp_path / "s", 10_000)
    assert {"price", "rm"} <= plan.numbers
    got = parquet(tmp_path / "s").column("price").to_pylist()
    want = [points(t) for t in expected(tmp_path / "s", path, "price", ";")]
    assert "6,50" in input_text(path, "price", ";") and "6.50" in want
    assert got == [None if t is None else float(t) for t in want]

    late = long_csv(tmp_path / "late.csv", 150_000, bad_at=140_000, sep=";")
    with caplog.at_level(logging.INFO):
        plan, _ = engine_run([str(late)], tmp_path / "t", 10_000)
    assert "price" in plan.numbers and REWROTE in caplog.text
    table = parquet(tmp_path / "t")
    assert table.schema.field("price").type == pa.string()
    # A decimal comma is written with a point, in both files; every other text as it came.
    want = [points(t) for t in expected(tmp_path / "t", late, "price", ";")]
    assert table.column("price").to_pylist() == want
    csv = pacsv.read_csv(
        tmp_path / "t" / "predictions.csv",
        convert_options=pacsv.ConvertOptions(
            column_types={"price": pa.string()}, strings_can_be_null=False
        ),
    )
    assert csv.column("price").to_pylist() == [t or "" for t in want]


def test_a_column_empty_in_the_first_block_keeps_every_later_value(tmp_path, caplog):
    n = 250_000
    later = ["" if i < 70_000 else str(i * 0.25) for i in range(n)]
    words = ["" if i < 70_000 else ("x" if i == 240_000 else str(i)) for i in range(n)]
    path = write_rows(
        tmp_path / "a.csv", "rm,later,words", [f"6,{a},{b}" for a, b in zip(later, words)]
    )
    with caplog.at_level(logging.INFO):
        plan, _ = engine_run([str(path)], tmp_path / "s", 10_000)
    assert REWROTE in caplog.text
    # Empty cells look like (missing) numbers, as they always did: both columns start float64.
    assert {"later", "words"} <= plan.numbers
    table = parquet(tmp_path / "s")
    assert table.schema.field("later").type == pa.float64()
    assert table.column("later").to_pylist() == [float(v) if v else None for v in later]
    assert table.schema.field("words").type == pa.string()
    assert table.column("words").to_pylist() == [w or None for w in words]


def test_dask_parts_fall_back_on_their_own_and_match_the_local_engine(tmp_path, caplog):
    pytest.importorskip("distributed")
    from batch.engines.dask import DaskEngine

    path = long_csv(tmp_path / "a.csv", 300_000, bad_at=220_000)  # 4.4 MB, ~1.3 MB into part 2
    engine_run([str(path)], tmp_path / "local", 8_192)
    with (
        DaskEngine(None, 2, 60.0, part_bytes=2_000_000) as engine,
        caplog.at_level(logging.INFO),
    ):
        plan, _ = engine_run([str(path)], tmp_path / "dask", 8_192, engine)
    names = part_names(tmp_path / "dask")
    # Each task's files (<task>-00000.parquet, ...; a new one every 2 MB of rows and where the
    # task met 'n/a'), named so that reading them in name order reads the rows in order.
    tasks = sorted({n.rsplit("-", 1)[0] for n in names})
    assert tasks == ["part-00000-00000", "part-00000-00001", "part-00000-00002"], names
    assert names == sorted(names) and len(names) > len(tasks)
    assert REWROTE in caplog.text
    local, dask = parquet(tmp_path / "local"), parquet(tmp_path / "dask")
    assert dask.schema.field("price").type == pa.string()
    assert dask.column("price").to_pylist() == expected(tmp_path / "dask", path, "price")
    assert dask.equals(local)
    assert (tmp_path / "dask" / "predictions.csv").read_bytes() == (
        tmp_path / "local" / "predictions.csv"
    ).read_bytes()


def test_a_contradiction_in_the_first_batch_written_needs_no_rewrite(tmp_path, caplog):
    # The first batch read (about 1 MB of rows) is longer than the plan's first block.
    path = long_csv(tmp_path / "a.csv", 70_000, bad_at=69_000)
    with caplog.at_level(logging.INFO):
        plan, _ = engine_run([str(path)], tmp_path / "s", 10_000)
    assert "price" in plan.numbers and REWROTE not in caplog.text
    assert part_names(tmp_path / "s") == ["part-00000.parquet"]  # the empty float64 file replaced
    assert parquet(tmp_path / "s").column("price").to_pylist() == expected(
        tmp_path / "s", path, "price"
    )


def test_restoring_text_reads_rows_longer_than_a_read_block(tmp_path, caplog):
    # predictions.csv then holds a row of about 3 MB among the rows to restore.
    rows = [f"6,{i}.5,{'z' * (3 << 20) if i == 30_000 else 'n'}" for i in range(80_000)]
    rows[75_000] = "6,n/a,n"
    path = write_rows(tmp_path / "a.csv", "rm,price,note", rows)
    with caplog.at_level(logging.INFO):
        plan, _ = engine_run([str(path)], tmp_path / "s", 1_000)
    assert "price" in plan.numbers and REWROTE in caplog.text
    table = parquet(tmp_path / "s")
    assert table.column("price").to_pylist() == expected(tmp_path / "s", path, "price")
    assert len(table.column("note")[30_000].as_py()) == 3 << 20


# -- whole numbers: int64, widened to float64 where a decimal comes later ------------------------

WIDENED = "are float64 throughout"


def test_as_int64_takes_only_whole_numbers_an_int64_holds():
    got = as_int64(pa.array(["12", " 7", "+3", "-4", "", None, "-9223372036854775808"]))
    assert got.type == pa.int64()
    assert got.to_pylist() == [12, 7, 3, -4, None, None, -(2**63)]
    for bad in (["1e5"], ["7.0"], ["02134"], ["9223372036854775808"], ["1", "n/a"], ["6.5"]):
        assert as_int64(pa.array(bad)) is None, bad


def int_csv(path: Path, n: int, late: dict[int, str], first: str = "12") -> Path:
    """rm, a whole-number column `n` in many forms (row 1 is `first`) with `late` values at
    some (1-based) rows, and medv."""
    forms = ["12", " 7", "+3", "-4", "", "0", "-0", "123456789"]
    rows = [f"6.{i % 10},{late.get(i, forms[i % len(forms)])},{10 + i % 30}" for i in range(n)]
    rows[0] = f"6.1,{first},10"
    return write_rows(path, "rm,n,medv", rows)


@pytest.mark.parametrize("pipeline", [True, False])
def test_a_late_decimal_widens_an_int64_column_to_float64_exactly(tmp_path, caplog, pipeline):
    path = int_csv(tmp_path / "a.csv", 120_000, {100_000: "6.5"})
    with caplog.at_level(logging.INFO):
        plan, _ = engine_run(
            [str(path)], tmp_path / "s", 8_192, LocalEngine(60.0, pipeline=pipeline)
        )
    assert plan.integers == {"n", "medv"}  # decided from the first block...
    assert WIDENED in caplog.text and REWROTE not in caplog.text  # ...and widened, not text
    table = parquet(tmp_path / "s")
    assert table.schema.field("n").type == pa.float64()
    assert table.schema.field("medv").type == pa.int64()  # other decisions stand
    want = [None if t is None else float(t) for t in expected(tmp_path / "s", path, "n")]
    assert table.column("n").to_pylist() == want and 6.5 in want


@pytest.mark.parametrize(
    "late, first",
    [
        # A decimal after an integer a float64 cannot hold (the first batch read holds about
        # 1 MB of rows: the decimal comes in a later one).
        ({180_000: "6.5"}, str(2**53 + 1)),
        # A non-number after a decimal.
        ({150_000: "6.5", 180_000: "n/a"}, "12"),
    ],
    ids=["decimal_after_a_huge_integer", "non_number_after_a_decimal"],
)
def test_a_late_value_an_int64_column_cannot_take_as_a_number_keeps_the_text(
    tmp_path, caplog, late, first
):
    path = int_csv(tmp_path / "a.csv", 200_000, late, first=first)
    with caplog.at_level(logging.INFO):
        plan, _ = engine_run([str(path)], tmp_path / "s", 8_192)
    assert "n" in plan.integers and REWROTE in caplog.text
    table = parquet(tmp_path / "s")
    assert table.schema.field("n").type == pa.string()
    assert table.column("n").to_pylist() == expected(tmp_path / "s", path, "n")


def test_dask_parts_widen_on_their_own_and_end_with_one_schema(tmp_path, caplog):
    pytest.importorskip("distributed")
    from batch.engines.dask import DaskEngine

    path = int_csv(tmp_path / "a.csv", 300_000, {220_000: "6.5"})  # in the second of 3 parts
    engine_run([str(path)], tmp_path / "local", 8_192)
    with (
        DaskEngine(None, 2, 60.0, part_bytes=1_500_000) as engine,
        caplog.at_level(logging.INFO),
    ):
        plan, _ = engine_run([str(path)], tmp_path / "dask", 8_192, engine)
    assert WIDENED in caplog.text
    schemas = {pq.read_schema(p) for p in outputs.parquet_files(tmp_path / "dask")}
    assert len(schemas) == 1
    local, dask = parquet(tmp_path / "local"), parquet(tmp_path / "dask")
    assert dask.schema.field("n").type == pa.float64()
    assert dask.equals(local)
    assert (tmp_path / "dask" / "predictions.csv").read_bytes() == (
        tmp_path / "local" / "predictions.csv"
    ).read_bytes()


def test_writers_that_disagree_settle_on_one_type_without_changing_a_value(tmp_path):
    schema = pa.schema([("n", pa.string()), ("m", pa.string())])
    empty = pa.RecordBatch.from_pylist([], schema=REJECT_SCHEMA)
    outputs.start_parts(tmp_path)
    batches = {  # part a: whole numbers only; part b: a decimal after its first batch
        "part-a": [[str(2**53 + 1), "2"], ["3"]],
        "part-b": [["4", "5"], ["6.5"]],
    }
    for part, rows in batches.items():
        sink = PredictionSink(
            tmp_path,
            schema,
            REJECT_SCHEMA,
            part=part,
            numbers=frozenset({"n", "m"}),
            integers=frozenset({"n", "m"}),
        )
        for xs in rows:
            m = ["1.5" if part == "part-b" and x == "6.5" else "1" for x in xs]
            sink.write(pa.record_batch([pa.array(xs), pa.array(m)], schema=schema), empty)
        sink.close()
    types = settle.stored_types(tmp_path, {"n", "m"})
    assert types == {"n": {"int64", "double"}, "m": {"int64", "double"}}
    # n: part a holds an integer a float64 would round, so text; m: float64 everywhere.
    assert settle.settle_types(tmp_path, {"n", "m"}) == settle.Settlement(
        text=frozenset({"n"}), wider=frozenset({"m"})
    )
    for source in text_restore.text_sources(tmp_path, {"n"}):  # each part from its own CSV
        text_restore.restore_text(source, ["n"])
    for path in settle.files_with(tmp_path, {"m"}):
        settle.widen_file(path, ["m"])
    assert len({pq.read_schema(p) for p in outputs.parquet_files(tmp_path)}) == 1
    table = parquet(tmp_path)
    assert table.column("n").to_pylist() == [str(2**53 + 1), "2", "3", "4", "5", "6.5"]
    assert table.column("m").to_pylist() == [1.0, 1.0, 1.0, 1.0, 1.0, 1.5]
