"""Helpers for scorer tests: run it, read what it wrote."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.helpers import run_cli, run_main


def score(models: Path, out: Path, *inputs, extra=(), subprocess: bool = False):
    args = ["--models-dir", models, "--output-dir", out]
    for i in inputs:
        args += ["--input", i]
    args += list(extra)
    if subprocess:
        return run_cli("jobs.score", *args)
    from jobs.score import main

    return run_main(main, args)


def run_dir(result) -> Path:
    assert result.code == 0, result.stderr[-3000:]
    return Path(result.json["run_dir"])


def predictions(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder / "predictions.parquet")


def rejects(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "rejects.csv", dtype={"raw_value": str}, keep_default_na=False)
