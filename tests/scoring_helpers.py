"""Helpers for scorer tests: run it, read what it wrote."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.helpers import run_cli, run_main
from tests.model_helpers import fake_metadata


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


def engine_run(entries: list[str], staged: Path, chunk_rows: int, engine=None):
    """An engine (the pipelined local one by default) on real files, with a folded model (no
    Keras), into `staged`; returns (plan, EngineResult)."""
    import numpy as np

    from batch.engines.base import Job
    from batch.engines.local import LocalEngine
    from batch.io.plan import plan_inputs
    from batch.model.network import LinearFold, Predictor

    staged.mkdir()
    domain = (0.0, 20.0)
    plan = plan_inputs(entries, None, "medv", None, domain)
    meta = fake_metadata(feature_range={"min": 3.5, "max": 8.8})
    contexts = {
        i: plan.context(i, domain=domain, meta=meta, version="v1", run_id="r")
        for i, fp in enumerate(plan.files)
        if fp.scorable
    }
    predictor = Predictor(
        "0" * 64,
        LinearFold(np.float32(9.1), np.float32(-34.6)),
        verified="a fold verified in the test",
    )
    job = Job(staged, contexts, predictor, chunk_rows)
    return plan, (engine or LocalEngine(60.0)).run(plan, job, None)
