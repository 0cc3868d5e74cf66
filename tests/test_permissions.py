"""Files no wider than asked: whatever the umask, nothing the jobs create is group- or
world-writable (a world-writable folder would let any local user plant links in it)."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys

from tests.helpers import FAST_FIT, REPO


def run_under_umask(umask: str, *argv, cwd) -> subprocess.CompletedProcess:
    command = " ".join(shlex.quote(str(a)) for a in (sys.executable, *argv))
    return subprocess.run(
        ["sh", "-c", f"umask {umask} && exec {command}"],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )


def too_wide(root) -> list[str]:
    found = []
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            found.append(f"{path.relative_to(root.parent)} {stat.filemode(mode)}")
    return found


def test_nothing_the_jobs_create_is_group_or_world_writable_under_umask_000(tmp_path):
    models, out = tmp_path / "models", tmp_path / "output"
    train = run_under_umask(
        "000", "-m", "jobs.train", "--models-dir", models, *FAST_FIT, cwd=tmp_path
    )
    assert train.returncode == 0, train.stderr[-2000:]
    score = run_under_umask(
        "000",
        "-m",
        "jobs.score",
        "--models-dir",
        models,
        "--output-dir",
        out,
        "--input",
        REPO / "sample_inputs",
        cwd=tmp_path,
    )
    assert score.returncode == 0, score.stderr[-2000:]
    assert (out / "runs").is_dir() and (out / "metrics").is_dir()
    assert too_wide(models) == [] and too_wide(out) == []


def test_a_tighter_umask_is_followed(tmp_path):
    out = tmp_path / "output"
    res = run_under_umask("077", "-m", "jobs.runs", "list", "--output-dir", out, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    created = [p for p in [out, *out.rglob("*")] if p.exists()]
    for path in created:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
