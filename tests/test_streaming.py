"""Streaming: peak memory stays flat as the input grows, and results equal the one-batch path."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tests.conftest import REPO

BOSTON = ["crim", "zn", "indus", "chas", "nox", "rm", "age", "dis", "rad", "tax", "ptratio", "b",
          "lstat"]


def boston_like(path: Path, rows: int) -> None:
    rng = np.random.default_rng(rows)
    with pq.ParquetWriter(path, pa.schema([(c, pa.float64()) for c in BOSTON] +
                                          [("suburb", pa.string())])) as writer:
        for start in range(0, rows, 25_000):
            n = min(25_000, rows - start)
            cols = {c: rng.uniform(0, 100, n) for c in BOSTON}
            cols["rm"] = rng.uniform(3.5, 9, n)
            cols["suburb"] = [f"suburb-{start + i}" for i in range(n)]
            writer.write_table(pa.table(cols))


def peak_rss_mb(models: Path, path: Path, out: Path, chunk_rows: int) -> float:
    """Run the real scorer as a subprocess; its own peak RSS from wait4."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "jobs.score", "--models-dir", str(models),
                             "--output-dir", str(out), "--input", str(path), "--chunk-rows",
                             str(chunk_rows)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read()[-2000:]
    return usage.ru_maxrss / 1024


def test_peak_memory_is_flat_when_the_input_grows_8x(models, tmp_path):
    small, large = tmp_path / "small.parquet", tmp_path / "large.parquet"
    boston_like(small, 50_000)
    boston_like(large, 400_000)
    streamed = [peak_rss_mb(models, p, tmp_path / f"s{i}", 2_000)
                for i, p in enumerate((small, large))]
    one_batch = [peak_rss_mb(models, p, tmp_path / f"b{i}", 10_000_000)
                 for i, p in enumerate((small, large))]
    grow_streamed = streamed[1] - streamed[0]
    grow_one_batch = one_batch[1] - one_batch[0]
    report = f"streamed {streamed} MB, one batch {one_batch} MB"
    # Reading everything at once grows visibly with 8x the rows (the measurement can see it) ...
    assert grow_one_batch > 50, report
    # ... while the streamed scorer stays flat: far less than 8x, and far less than one batch.
    assert grow_streamed < 0.25 * grow_one_batch, report
    assert grow_streamed < 40, report
    assert streamed[1] < 8 * streamed[0]

    def rows(folder: Path) -> pd.DataFrame:
        run = next((folder / "runs").iterdir())
        return pd.read_parquet(run / "predictions.parquet").drop(columns="run_id")

    pd.testing.assert_frame_equal(rows(tmp_path / "s1"), rows(tmp_path / "b1"))
    assert len(rows(tmp_path / "s1")) == 400_000
