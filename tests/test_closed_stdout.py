"""A closed stdout (`| head -1`) ends a job quietly with the run's own exit code (issue 20, item 6).

Real pipes: the job writes into a pipe whose reader has gone, as under `jobs.runs list | head -1`.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from batch.core.documents import RunLine, dump
from tests.helpers import REPO


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO))


def piped_to_head(err_file: Path, module: str, *args) -> tuple[int, str, str]:
    """`python -m module args | head -1` in bash: (the job's own exit code, head's line, stderr)."""
    command = " ".join([sys.executable, "-m", module, *map(str, args)])
    proc = subprocess.run(
        ["bash", "-c", f'{command} 2>"$ERR" | head -1; echo "CODE=${{PIPESTATUS[0]}}"'],
        cwd=REPO,
        env={**_env(), "ERR": str(err_file)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = proc.stdout.splitlines()
    return int(lines[-1].removeprefix("CODE=")), lines[0], err_file.read_text()


def many_runs(out: Path, count: int = 3000) -> None:
    """A runs.jsonl of `count` runs: `jobs.runs list` prints far more than a pipe buffer."""
    out.mkdir(parents=True)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    lines = []
    for i in range(count):
        t = (start + dt.timedelta(minutes=i)).isoformat(timespec="seconds")
        lines.append(
            dump(
                RunLine(
                    run_id=f"20260101T{i:06d}Z-{i:08x}",
                    status="failed",
                    exit_code=3,
                    error="no input files",
                    started_at=t,
                    finished_at=t,
                    duration_seconds=0.0,
                    rows_read=0,
                    rows_scored=0,
                    rows_rejected=0,
                    rows_out_of_range=0,
                    reject_fraction=0.0,
                    drift=False,
                    interval_coverage=None,
                    mse=None,
                    mean_prediction=None,
                    model_version=None,
                    run_dir=None,
                )
            )
        )
    (out / "runs.jsonl").write_text("\n".join(lines) + "\n")


def test_runs_list_piped_to_head_ends_quietly_with_exit_0(tmp_path):
    out = tmp_path / "out"
    many_runs(out)
    for extra in ([], ["--json"]):
        code, first, err = piped_to_head(
            tmp_path / "err.txt", "jobs.runs", "list", *extra, "--output-dir", out
        )
        assert code == 0, err[-3000:]
        assert first.strip()
        assert "Traceback" not in err and "BrokenPipe" not in err, err[-3000:]
        assert "error" not in err, err[-3000:]


def test_models_history_piped_to_head_ends_quietly(models, tmp_path):
    """Many alias moves: `jobs.models history` prints more than a pipe holds, and stops quietly."""
    line = (models / "history.jsonl").read_text().splitlines()[-1]
    (models / "history.jsonl").write_text((line + "\n") * 3000)
    code, first, err = piped_to_head(
        tmp_path / "err.txt", "jobs.models", "history", "--json", "--models-dir", models
    )
    assert code == 0, err[-3000:]
    assert first.startswith("{")
    assert "Traceback" not in err and "BrokenPipe" not in err, err[-3000:]


def test_score_with_stdout_closed_completes_publishes_and_exits_0(models, tmp_path, write_csv):
    data = write_csv("in.csv", "rm,medv\n6.0,20\n7.0,30\n")
    out = tmp_path / "out"
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the job writes a byte
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "jobs.score", "--models-dir", str(models)]
            + ["--output-dir", str(out), "--input", str(data)],
            cwd=REPO,
            env=_env(),
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    finally:
        os.close(write)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    (run,) = (out / "runs").iterdir()
    assert (run / "_SUCCESS").is_file()
    assert (out / "LATEST").read_text().strip().endswith(run.name)
