"""What analysts read: right units, typed columns, warnings as data, and every run as one table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import one_error_sentence
from tests.scoring_helpers import run_dir, score


def suburbs(n: int = 200, seed: int = 0, rooms=None) -> pd.DataFrame:
    """A feed like the training data: rooms around 6.3, prices in $K from the same line."""
    rng = np.random.default_rng(seed)
    rm = rng.normal(6.3, 0.7, n).clip(3.6, 8.7).round(3) if rooms is None else rooms
    return pd.DataFrame(
        {
            "suburb": [f"s{i}" for i in range(n)],
            "rm": rm,
            "medv": (9.1 * rm - 34.7 + rng.normal(0, 4, n)).clip(5, 50).round(1),
        }
    )


def report_of(res) -> dict:
    return json.loads((Path(res.json["run_dir"]) / "report.json").read_text())


def write(tmp_path: Path, name: str, frame: pd.DataFrame, **kwargs) -> Path:
    path = tmp_path / "in" / name
    path.parent.mkdir(exist_ok=True)
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, **kwargs)
    return path


def test_prices_in_dollars_are_caught_and_the_metrics_flagged(models, tmp_path):
    frame = suburbs()
    frame["price"] = frame.pop("medv") * 1000  # dollars, not $K
    res = score(
        models,
        tmp_path / "out",
        write(tmp_path, "dollars.csv", frame),
        extra=["--target-column", "price"],
    )
    assert res.code == 0, res.stderr[-2000:]
    report = report_of(res)
    assert report["metrics"]["target_column"] == "price"
    assert report["metrics"]["comparable"] is False
    assert any("dollars rather than $K" in w for w in res.json["warnings"])
    assert "dollars rather than $K" in res.stderr  # also a WARNING log line
    html = (Path(res.json["run_dir"]) / "report.html").read_text()
    assert "<code>price</code>" in html and "NOT comparable" in html


def test_a_misspelt_target_column_is_a_warning_not_silence(models, tmp_path):
    res = score(
        models,
        tmp_path / "out",
        write(tmp_path, "a.csv", suburbs()),
        extra=["--target-column", "medvv"],
    )
    assert res.code == 0
    assert any("'medvv'" in w and "spelling" in w for w in res.json["warnings"])
    assert report_of(res)["metrics"] is None


def test_whole_number_rooms_are_flagged_as_drift(models, tmp_path):
    frame = suburbs(rooms=np.random.default_rng(1).integers(4, 9, 200).astype(float))
    res = score(models, tmp_path / "out", write(tmp_path, "per_house.csv", frame))
    assert res.code == 0
    assert any("whole numbers" in w for w in res.json["warnings"])
    assert report_of(res)["drift"]["differs_markedly"]


def test_squared_rooms_fail_with_a_units_hint_and_the_rejected_values_summarised(models, tmp_path):
    frame = suburbs()
    frame["rm"] = frame["rm"] ** 2  # a feed in the wrong unit: every value out of the domain
    res = score(models, tmp_path / "out", write(tmp_path, "squared.csv", frame))
    assert res.code == 5
    sentence = one_error_sentence(res.stderr)
    assert "units" in sentence and "raise --max-reject-fraction" not in sentence
    failed = Path(res.json["run_dir"])
    report = json.loads((failed / "report.json").read_text())
    rr = report["rejected_rooms"]
    assert rr["count"] == 200 and 20 < rr["p50"] < 60 and rr["min"] > 13
    assert any("rooms squared" in w for w in report["warnings"])
    html = (failed / "report.html").read_text()
    assert "Kept for diagnosis only" in html and "predictions.parquet" not in html
    assert html.count("rooms squared") == 1  # each warning once on the page


def test_one_bad_file_among_good_ones_fails_the_run_naming_it(models, tmp_path):
    write(tmp_path, "good.csv", suburbs(1000))
    bad = suburbs(20, seed=3)
    bad["rm"] = bad["rm"].astype(object)
    bad.loc[:9, "rm"] = "n/a"  # half of this file, 1% of the run
    write(tmp_path, "bad.csv", bad)
    res = score(models, tmp_path / "out", tmp_path / "in")
    assert res.code == 5
    sentence = one_error_sentence(res.stderr)
    assert "bad.csv" in sentence and "good.csv" not in sentence
    assert not (tmp_path / "out" / "runs").exists()


def test_on_drift_fail_exits_8_and_publishes_nothing(models, tmp_path):
    frame = suburbs(rooms=np.full(200, 8.5))
    path = write(tmp_path, "drifted.csv", frame)
    warn = score(models, tmp_path / "warn", path)
    assert warn.code == 0 and warn.json["warnings"]
    res = score(models, tmp_path / "out", path, extra=["--on-drift", "fail"], subprocess=True)
    assert res.code == 8, res.stderr[-2000:]
    assert res.json["status"] == "drift_detected" and res.json["exit_code"] == 8
    assert res.json["warnings"] == warn.json["warnings"]
    assert not (tmp_path / "out" / "runs").exists() and not (tmp_path / "out" / "LATEST").exists()
    failed = Path(res.json["run_dir"])
    assert failed.parent.name == "failed"
    assert sorted(p.name for p in failed.iterdir()) == ["rejects.csv", "report.html", "report.json"]


def test_number_columns_become_int64_or_float64_whatever_the_writer(models, tmp_path):
    frame = suburbs(50)
    frame["ratio"] = np.random.default_rng(2).random(50) / 3  # 17 significant digits as written
    frame["zip"] = [f"0{2100 + i}" for i in range(50)]  # a code: stays text
    frame["id"] = [str(10**17 + i) for i in range(50)]  # beyond float64, whole: int64
    frame["key"] = [str(10**19 + i) for i in range(50)]  # beyond int64: stays text
    frame["count"] = list(range(50))
    got = pq.read_table(
        run_dir(score(models, tmp_path / "a", write(tmp_path, "pd.csv", frame)))
        / "predictions.parquet"
    )
    assert got.schema.field("ratio").type == pa.float64()
    assert got.column("ratio").to_pylist() == frame["ratio"].tolist()  # exactly
    assert got.schema.field("id").type == got.schema.field("count").type == pa.int64()
    assert got.column("id").to_pylist() == [10**17 + i for i in range(50)]  # exactly
    assert (
        got.schema.field("zip").type == pa.string() and got.schema.field("key").type == pa.string()
    )

    comma = tmp_path / "in" / "komma.csv"
    comma.write_text("Ort;RM;Preis\nA;6,5;21,3\nB;7;24\nC;5,25;18,75\n")
    got = pq.read_table(run_dir(score(models, tmp_path / "b", comma)) / "predictions.parquet")
    assert got.schema.field("Preis").type == pa.float64()
    assert got.column("Preis").to_pylist() == [21.3, 24.0, 18.75]
    assert got.column("RM").to_pylist() == [6.5, 7.0, 5.25]
    assert got.schema.field("Ort").type == pa.string()


def test_the_same_data_as_csv_or_parquet_gives_the_same_columns(models, tmp_path):
    frame = suburbs(30).rename(columns={"suburb": " Suburb Name ", "rm": "RM "})
    csv = run_dir(score(models, tmp_path / "a", write(tmp_path, "same.csv", frame)))
    parquet = run_dir(score(models, tmp_path / "b", write(tmp_path, "same.parquet", frame)))
    a, b = (pq.read_table(f / "predictions.parquet") for f in (csv, parquet))
    assert a.column_names == b.column_names
    assert a.column_names[:3] == ["Suburb Name", "RM", "medv"]
    assert (
        pd.read_csv(csv / "predictions.csv").columns.tolist()
        == pd.read_csv(parquet / "predictions.csv").columns.tolist()
    )
    drop = ["source_file", "run_id"]
    pd.testing.assert_frame_equal(
        a.to_pandas().drop(columns=drop), b.to_pandas().drop(columns=drop)
    )


def test_every_run_of_either_engine_reads_as_one_table_with_duckdb(models, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    first = suburbs(300, seed=5)
    path = write(tmp_path, "feed.csv", first)
    out = tmp_path / "out"
    run_dir(score(models, out, path))
    run_dir(score(models, out, path, extra=["--engine", "dask", "--dask-workers", 1]))
    changed = first.copy()
    changed.loc[0, "rm"] = 7.777  # a corrected row, scored by a later run
    path.write_text(changed.to_csv(index=False))
    last = run_dir(score(models, out, path))
    glob = str(out / "runs" / "*" / "predictions.parquet" / "*.parquet")
    con = duckdb.connect()
    total = con.execute(
        f"select count(*), count(distinct run_id) from read_parquet('{glob}', union_by_name = true)"
    ).fetchone()
    assert total == (900, 3)
    latest = con.execute(f"""
        select source_file, source_row, rm, predicted_median_price_k from (
          select *, row_number() over (partition by source_file, source_row
                                       order by run_id desc) as n
          from read_parquet('{glob}', union_by_name = true)) where n = 1
        order by source_row""").fetchdf()
    assert len(latest) == 300 and latest["rm"].iloc[0] == pytest.approx(7.777)
    assert (
        latest["predicted_median_price_k"].to_numpy()
        == pd.read_parquet(last / "predictions.parquet")["predicted_median_price_k"].to_numpy()
    ).all()
    both = pd.concat(
        pd.read_parquet(p) for p in sorted((out / "runs").glob("*/predictions.parquet"))
    )
    assert len(both) == 900  # pandas reads each run's folder the same way
    rejects = pd.read_csv(last / "rejects.csv", keep_default_na=False)
    assert list(rejects.columns) == ["source_file", "source_row", "raw_value", "reason"]


def test_report_figures_are_rounded_and_the_fit_plot_compares_least_squares(models, tmp_path):
    res = score(models, tmp_path / "out", write(tmp_path, "a.csv", suburbs()))
    folder = Path(res.json["run_dir"])
    text = (folder / "report.json").read_text()
    report = json.loads(text)

    def floats(value):
        if isinstance(value, float):
            yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from floats(v)
        elif isinstance(value, list):
            for v in value:
                yield from floats(v)

    assert all(
        len(f"{f:.15g}".lstrip("-0.").replace(".", "").rstrip("0")) <= 7 for f in floats(report)
    )
    html = (folder / "report.html").read_text()
    assert "larger than the least-squares line" in html or "as good as the least-squares" in html


def test_text_columns_of_decimal_comma_files_keep_their_commas(models, tmp_path):
    path = tmp_path / "in" / "komma.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_text("rm;code;medv\n6,5;1,5;24\n5,5;abc;20\n")
    folder = run_dir(score(models, tmp_path / "out", path))
    got = pq.read_table(folder / "predictions.parquet")
    assert got.column("code").to_pylist() == ["1,5", "abc"]  # text: carried through as it came
    assert pd.read_csv(folder / "predictions.csv", dtype=str)["code"].tolist() == ["1,5", "abc"]
    assert got.column("rm").to_pylist() == [6.5, 5.5]  # numbers: decimal commas read
