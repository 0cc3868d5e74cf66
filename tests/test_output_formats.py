"""--output-formats: a run keeps predictions.parquet, predictions.csv or both; rejects.csv always."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from tests.helpers import REPO, one_error_sentence, run_cli
from tests.scoring_helpers import run_dir, score

pytest.importorskip("distributed")

from tests.test_dask import DASK, multi_file_input, read_predictions

LOCAL = ["--max-reject-fraction", 1, "--chunk-rows", 1000]


def read_csv(folder) -> pd.DataFrame:
    frame = pd.read_csv(folder / "predictions.csv", dtype=str, keep_default_na=False)
    return frame.drop(columns="run_id")


def names(folder) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_each_engine_keeps_only_the_files_asked_for(models, tmp_path):
    multi_file_input(tmp_path / "in")
    both = run_dir(score(models, tmp_path / "both", tmp_path / "in", extra=LOCAL))
    assert {"predictions.parquet", "predictions.csv", "rejects.csv"} <= names(both)
    for engine, extra in (("local", LOCAL), ("dask", DASK)):
        only_parquet = run_dir(
            score(
                models,
                tmp_path / f"{engine}-parquet",
                tmp_path / "in",
                extra=[*extra, "--output-formats", "parquet"],
                subprocess=engine == "local",  # through the real CLI once
            )
        )
        assert "predictions.csv" not in names(only_parquet)
        assert "parts" not in names(only_parquet)
        assert "rejects.csv" in names(only_parquet)
        pd.testing.assert_frame_equal(read_predictions(both), read_predictions(only_parquet))
        pd.testing.assert_frame_equal(
            pd.read_csv(both / "rejects.csv", dtype=str).drop(columns="run_id", errors="ignore"),
            pd.read_csv(only_parquet / "rejects.csv", dtype=str).drop(
                columns="run_id", errors="ignore"
            ),
        )

        only_csv = run_dir(
            score(
                models,
                tmp_path / f"{engine}-csv",
                tmp_path / "in",
                extra=[*extra, "--output-formats", "csv"],
            )
        )
        assert "predictions.parquet" not in names(only_csv)
        assert {"predictions.csv", "rejects.csv", "report.json"} <= names(only_csv)
        pd.testing.assert_frame_equal(read_csv(both), read_csv(only_csv))


def test_new_only_and_the_environment_setting_work_with_a_parquet_only_run(
    models, tmp_path, monkeypatch
):
    (tmp_path / "in").mkdir()
    shutil.copy(REPO / "sample_inputs" / "suburbs_north.csv", tmp_path / "in")
    monkeypatch.setenv("BATCH_OUTPUT_FORMATS", "parquet")
    first = run_dir(score(models, tmp_path / "out", tmp_path / "in", subprocess=True))
    assert "predictions.csv" not in names(first)
    assert "<code>predictions.csv</code>" not in (first / "report.html").read_text()
    assert "<code>predictions.parquet/</code>" in (first / "report.html").read_text()
    assert "predictions: parquet only" in (tmp_path / "out" / "index.html").read_text()
    show = run_cli("jobs.runs", "show", "latest", "--output-dir", tmp_path / "out")
    assert show.code == 0 and "rejects.csv, predictions.parquet)" in show.stdout, show.stdout
    again = score(models, tmp_path / "out", tmp_path / "in", extra=["--new-only"], subprocess=True)
    assert again.code == 0, again.stderr[-2000:]
    assert again.json.get("rows_scored", 0) == 0, again.json

    monkeypatch.setenv("BATCH_OUTPUT_FORMATS", "xlsx")
    bad = score(models, tmp_path / "out2", tmp_path / "in", subprocess=True)
    assert bad.code == 2
    assert "output_formats" in one_error_sentence(bad.stderr)
