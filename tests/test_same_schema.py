"""Issue 23: the same rows as CSV or as Parquet give byte-for-byte the same predictions.parquet
schema (integers int64, decimals float64, empty text null), through the real CLI, with either
engine; a late decimal widens an int64 column to float64 and a late non-number makes it text,
no value changed."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tests.scoring_helpers import run_dir, score

ENGINES = {"local": [], "dask": ["--engine", "dask", "--dask-workers", 1]}


def feed(n: int = 40) -> pa.Table:
    """Rows with an int32, an int64 (with a null), a decimal and a text column with empty
    cells."""
    return pa.table(
        {
            "suburb": pa.array(["" if i % 5 == 0 else f"s{i}" for i in range(n)], pa.string()),
            "rm": pa.array([5.5 + (i % 20) / 10 for i in range(n)], pa.float64()),
            "rooms_total": pa.array([100 + i for i in range(n)], pa.int32()),
            "population": pa.array([None if i == 3 else 10**12 + i for i in range(n)], pa.int64()),
            "medv": pa.array([20.5 + i / 4 for i in range(n)], pa.float64()),
        }
    )


def write_both(folder: Path, table: pa.Table) -> tuple[Path, Path]:
    folder.mkdir(exist_ok=True)
    csv, parquet = folder / "feed.csv", folder / "feed.parquet"
    pacsv.write_csv(table, csv, write_options=pacsv.WriteOptions(quoting_style="none"))
    pq.write_table(table, parquet)
    return csv, parquet


def stored(folder: Path) -> pa.Table:
    return pq.read_table(folder / "predictions.parquet")


def file_schemas(folder: Path) -> set[pa.Schema]:
    return {pq.read_schema(p) for p in (folder / "predictions.parquet").glob("*.parquet")}


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_the_same_rows_as_csv_or_parquet_give_the_same_schema(models, tmp_path, engine):
    csv, parquet = write_both(tmp_path / "in", feed())
    extra = [*ENGINES[engine], "--target-column", "medv"]
    a = run_dir(score(models, tmp_path / "a", csv, extra=extra, subprocess=True))
    b = run_dir(score(models, tmp_path / "b", parquet, extra=extra, subprocess=True))
    (schema_a,), (schema_b,) = file_schemas(a), file_schemas(b)
    assert schema_a == schema_b  # one schema per run, the same for either feed
    assert schema_a.field("rooms_total").type == pa.int64()
    assert schema_a.field("population").type == pa.int64()
    assert schema_a.field("medv").type == pa.float64()
    assert schema_a.field("suburb").type == pa.string()
    ta, tb = stored(a), stored(b)
    drop = ["source_file", "run_id"]
    assert ta.drop_columns(drop).equals(tb.drop_columns(drop))
    assert ta.column("suburb").null_count == 8  # empty text is null from either feed
    assert ta.column("population").to_pylist()[3] is None
    assert ta.column("population").to_pylist()[4] == 10**12 + 4


def long_feed(folder: Path, late: str) -> Path:
    """250,000 rows whose `n` holds whole numbers in several forms, and `late` at row 240,000
    (after the first 65,536 rows the plan looks at, in a later batch than the first: a batch
    read holds at most about 1 MB of rows)."""
    folder.mkdir(exist_ok=True)
    forms = ["12", " 7", "+3", "-4", "", "0", "42"]
    rows = [f"6.{i % 10},{forms[i % len(forms)]},{20 + i % 30}" for i in range(250_000)]
    rows[239_999] = f"6.5,{late},20"
    path = folder / "late.csv"
    path.write_text("rm,n,medv\n" + "\n".join(rows) + "\n")
    return path


def csv_text(path: Path, column: str) -> list[str | None]:
    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types={column: pa.string()}, strings_can_be_null=False
        ),
    )
    return [t or None for t in table.column(column).to_pylist()]


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_a_late_decimal_widens_the_whole_column_to_float64(models, tmp_path, engine):
    path = long_feed(tmp_path / "in", "6.5")
    res = score(
        models,
        tmp_path / "out",
        path,
        extra=[*ENGINES[engine], "--chunk-rows", 5_000],
        subprocess=True,
    )
    got = stored(run_dir(res))
    assert len(file_schemas(run_dir(res))) == 1
    assert got.schema.field("n").type == pa.float64()
    assert got.schema.field("medv").type == pa.int64()
    want = [None if t is None else float(t) for t in csv_text(path, "n")]
    assert got.column("n").to_pylist() == want  # every value exact, the decimal too
    assert want[239_999] == 6.5
    assert "are float64 throughout" in res.stderr  # the int64 rows written before: rewritten


def test_a_late_non_number_gives_text_exactly_as_in_the_csv(models, tmp_path):
    path = long_feed(tmp_path / "in", "n/a")
    res = score(models, tmp_path / "out", path, extra=["--chunk-rows", 5_000], subprocess=True)
    got = stored(run_dir(res))
    assert got.schema.field("n").type == pa.string()
    assert got.column("n").to_pylist() == csv_text(path, "n")  # ' 7' and '+3' as written
    assert "kept as text throughout" in res.stderr
    assert csv_text(run_dir(res) / "predictions.csv", "n") == csv_text(path, "n")


def test_duckdb_reads_a_csv_run_and_a_parquet_run_as_one_table(models, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    csv, parquet = write_both(tmp_path / "in", feed())
    out = tmp_path / "out"
    run_dir(score(models, out, csv, subprocess=True))
    run_dir(score(models, out, parquet, subprocess=True))
    glob = str(out / "runs" / "*" / "predictions.parquet" / "*.parquet")
    con = duckdb.connect()
    # No union_by_name: the files share one schema.
    types = dict(
        con.execute(
            f"select column_name, column_type from (describe select * from '{glob}')"
        ).fetchall()
    )
    assert types["rooms_total"] == "BIGINT" and types["population"] == "BIGINT"
    assert types["medv"] == "DOUBLE" and types["suburb"] == "VARCHAR"
    rows = con.execute(
        f"select count(*), count(distinct run_id), sum(rooms_total), count(suburb) from '{glob}'"
    ).fetchone()
    assert rows == (80, 2, 2 * sum(100 + i for i in range(40)), 2 * 32)
