"""Progress: a live line on a terminal, periodic log lines otherwise (training and scoring)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.helpers import FAST_FIT, REPO, run_cli


def run_on_terminal(*args) -> tuple[int, str]:
    """Run a job with stderr on a pseudo-terminal; returns (exit code, what the terminal showed)."""
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", *map(str, args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the job closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait()
    os.close(master)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def test_training_progress_per_epoch_on_a_terminal(tmp_path):
    code, screen = run_on_terminal(
        "jobs.train", "--models-dir", tmp_path / "m", *FAST_FIT, "--log-every-epochs", 100
    )
    assert code == 0
    for n in (1, 2, 3):
        assert f"\repoch {n}/3 loss" in screen


def test_scoring_progress_bar_on_a_terminal_and_log_lines_otherwise(models, tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(
        pa.table({"rm": np.random.default_rng(0).uniform(4, 8, 200_000)}),
        path,
        row_group_size=10_000,
    )
    code, screen = run_on_terminal(
        "jobs.score",
        "--models-dir",
        models,
        "--output-dir",
        tmp_path / "a",
        "--input",
        path,
        "--chunk-rows",
        500,
    )
    assert code == 0
    assert "\rscoring " in screen and "rows/s" in screen
    res = run_cli(
        "jobs.score",
        "--models-dir",
        models,
        "--output-dir",
        tmp_path / "b",
        "--input",
        path,
        "--chunk-rows",
        500,
        "--progress-seconds",
        0.2,
    )
    assert res.code == 0
    assert "progress: " in res.stderr and "rows/s" in res.stderr and "\r" not in res.stderr
