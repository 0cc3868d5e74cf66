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

from batch.core.names import BOSTON_COLUMNS
from tests.helpers import REPO

BOSTON = BOSTON_COLUMNS  # the 13 features, as the scorer knows them


def boston_like(path: Path, rows: int) -> None:
    rng = np.random.default_rng(rows)
    with pq.ParquetWriter(
        path, pa.schema([(c, pa.float64()) for c in BOSTON] + [("suburb", pa.string())])
    ) as writer:
        for start in range(0, rows, 25_000):
            n = min(25_000, rows - start)
            cols = {c: rng.uniform(0, 100, n) for c in BOSTON}
            cols["rm"] = rng.uniform(3.5, 9, n)
            cols["suburb"] = [f"suburb-{start + i}" for i in range(n)]
            writer.write_table(pa.table(cols))


# Runs the scorer and reports its own peak RSS (VmHWM). wait4's ru_maxrss would not do: Linux
# carries the parent's high-water mark across fork+exec, and pytest holds TensorFlow by now.
MEASURED = """
import runpy, sys
sys.argv = ["jobs.score"] + sys.argv[1:]
try:
    runpy.run_module("jobs.score", run_name="__main__")
finally:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("PEAK_RSS_KB " + line.split()[1] + "\\n")
"""


def peak_rss_mb(models: Path, path: Path, out: Path, chunk_rows: int) -> float:
    """Run the real scorer as a subprocess; its own peak resident memory, in MB."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            MEASURED,
            "--models-dir",
            str(models),
            "--output-dir",
            str(out),
            "--input",
            str(path),
            "--chunk-rows",
            str(chunk_rows),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak = [ln for ln in proc.stderr.splitlines() if ln.startswith("PEAK_RSS_KB ")]
    return int(peak[-1].split()[1]) / 1024


def test_peak_memory_is_flat_when_the_input_grows_8x(models, tmp_path):
    small, large = tmp_path / "small.parquet", tmp_path / "large.parquet"
    boston_like(small, 50_000)
    boston_like(large, 400_000)
    streamed = [
        peak_rss_mb(models, p, tmp_path / f"s{i}", 2_000) for i, p in enumerate((small, large))
    ]
    one_batch = [
        peak_rss_mb(models, p, tmp_path / f"b{i}", 10_000_000) for i, p in enumerate((small, large))
    ]
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
