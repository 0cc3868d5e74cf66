"""One typed table across feeds: names differing only in case are one column, the same rows as
CSV or Parquet give one schema, every row has rooms_used / target_used; and the Done-when test:
mixed feeds into one output read with DuckDB in one query."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import assert_failed, run_cli
from tests.scoring_helpers import run_dir, score
from tests.test_analysts import suburbs, write
from tests.test_comparable import prom


def test_two_columns_differing_only_in_case_in_one_file_is_exit_3(models, tmp_path):
    path = tmp_path / "in" / "twins.csv"
    path.parent.mkdir()
    path.write_text("rm,Price,PRICE\n6.1,20,21\n")
    res = score(models, tmp_path / "out", path, subprocess=True)
    assert_failed(res, 3, "'Price'", "'PRICE'", "only in case")


def test_rooms_used_and_target_used_whatever_the_feed_called_them(models, tmp_path):
    frame = suburbs(30).rename(columns={"rm": "AvG_RoOmS", "medv": "value"})
    frame.loc[3, "value"] = np.nan
    res = score(
        models,
        tmp_path / "out",
        write(tmp_path, "f.csv", frame),
        extra=["--target-column", "value"],
    )
    table = pq.read_table(run_dir(res) / "predictions.parquet")
    assert table.schema.field("rooms_used").type == pa.float64()
    assert table.schema.field("target_used").type == pa.float64()
    assert table.column("rooms_used").to_pylist() == frame["AvG_RoOmS"].tolist()
    used = table.column("target_used").to_pylist()
    assert used[3] is None and used[0] == frame["value"][0]
    # without a true-price column, target_used is there and null
    plain = score(
        models, tmp_path / "out2", write(tmp_path, "g.csv", suburbs(10).drop(columns="medv"))
    )
    got = pq.read_table(run_dir(plain) / "predictions.parquet").column("target_used")
    assert got.null_count == 10 and got.type == pa.float64()


def feeds(tmp_path):
    """Mixed feeds: ($K, CSV, `RM`), the same rows as Parquet (`rm`), dollars, $100K, log."""
    base = suburbs(60, seed=3)
    base.loc[::9, "suburb"] = ""  # empty text: null in the output, from CSV and Parquet alike
    k_csv = base.rename(columns={"rm": "RM"})
    k_parquet = base.copy()
    k_parquet["suburb"] = k_parquet["suburb"].replace("", None)
    dollars, hundred_k, logged = (suburbs(60, seed=s) for s in (4, 5, 6))
    dollars["medv"] *= 1000
    hundred_k["medv"] /= 100
    logged["medv"] = np.log(logged["medv"] * 1000)
    return [
        (write(tmp_path, "k.csv", k_csv), True),
        (write(tmp_path, "k.parquet", k_parquet), True),
        (write(tmp_path, "dollars.csv", dollars), False),
        (write(tmp_path, "hundred_k.parquet", hundred_k), False),
        (write(tmp_path, "log.csv", logged), False),
    ]


def test_mixed_feeds_read_as_one_table_and_agree_on_comparable(models, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    out = tmp_path / "out"
    summaries = []
    for path, comparable in feeds(tmp_path):
        res = score(models, out, path, extra=["--target-column", "medv"])
        assert res.code == 0, res.stderr[-2000:]
        assert res.json["comparable"] is comparable, (path.name, res.json["warnings"])
        # the .prom file agrees on the run just scored
        assert prom(out)[("batch_score_comparable", ())] == (1 if comparable else 0)
        summaries.append(res.json)

    glob = str(out / "runs" / "*" / "predictions.parquet" / "*.parquet")
    con = duckdb.connect()
    rows, with_rooms, runs = con.execute(
        f"select count(*), count(rooms_used), count(distinct run_id) "
        f"from read_parquet('{glob}', union_by_name = true)"
    ).fetchone()
    assert rows == with_rooms == sum(s["rows_scored"] for s in summaries)
    assert runs == len(summaries)
    # One schema: every file has the same columns with the same types (RM and rm are one
    # column to DuckDB; CSV and Parquet of the same rows give byte-for-byte the same schema).
    schemas = [pq.read_schema(p) for p in sorted(out.glob("runs/*/predictions.parquet/*.parquet"))]
    first = {f.name.lower(): f.type for f in schemas[0]}
    assert all({f.name.lower(): f.type for f in s} == first for s in schemas)
    k_runs = [summaries[0]["run_id"], summaries[1]["run_id"]]
    k_tables = [
        pq.read_table(out / "runs" / r / "predictions.parquet").drop_columns(
            ["source_file", "run_id"]
        )
        for r in k_runs
    ]
    assert k_tables[0].schema.types == k_tables[1].schema.types
    assert k_tables[0].column("suburb").null_count == 7
    assert k_tables[0].column("suburb").to_pylist() == k_tables[1].column("suburb").to_pylist()

    # index.html, jobs.runs list and the .prom file agree on which runs are comparable.
    listed = json.loads(run_cli("jobs.runs", "list", "--json", "--output-dir", out).stdout)
    by_id = {r["run_id"]: r["comparable"] for r in listed}
    assert by_id == {s["run_id"]: s["comparable"] for s in summaries}
    html = (out / "index.html").read_text()
    for s in summaries:
        row = html[html.index(f"id='run-{s['run_id']}'") :].split("</tr>")[0]
        assert ("class='nc'" in row) is (not s["comparable"])
