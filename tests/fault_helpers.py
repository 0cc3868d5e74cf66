"""Scorers as real subprocesses against a moto S3 server, for the fault tests (fencing, a store
that is stopped, paused or restarted, stop signals): start one, wait for it to hold the lock,
and check that a run that failed left nothing published."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import REPO, Result
from tests.s3_helpers import client, keys

BUCKET = "fenced"


def big_csv(folder: Path, rows: int = 200_000) -> Path:
    """A local CSV long enough that a run is still working a moment after it took the lock."""
    path = folder / "suburbs.csv"
    with path.open("w") as f:
        f.write("rm,age\n")
        for i in range(rows):
            f.write(f"{5 + (i % 300) / 100:.2f},{i % 97}\n")
    return path


class Scorer:
    """`python -m jobs.score` in the background, its output in files (never a full pipe)."""

    def __init__(self, tmp: Path, name: str, env: dict[str, str], *args: object) -> None:
        self.out = tmp / f"{name}.stdout"
        self.err = tmp / f"{name}.stderr"
        full = dict(os.environ, **env, PYTHONPATH=str(REPO))
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jobs.score", *[str(a) for a in args]],
                cwd=REPO,
                env=full,
                stdout=out,
                stderr=err,
            )

    def wait(self, timeout: float) -> Result:
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return Result(self.proc.returncode, self.out.read_text(), self.err.read_text())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_for_key(env: dict[str, str], key: str, scorer: Scorer, timeout: float = 120) -> None:
    """Return as soon as `key` exists (the scorer took its lock, say); fail if it ended first."""
    s3 = client(env)
    deadline = time.monotonic() + timeout
    while True:
        found = s3.list_objects_v2(Bucket=BUCKET, Prefix=key).get("Contents", [])
        if any(o["Key"] == key for o in found):
            return
        assert scorer.proc.poll() is None, scorer.err.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{key} never appeared"
        time.sleep(0.005)


def published(env: dict[str, str], prefix: str) -> tuple[set[str], str | None]:
    """(the run ids under <prefix>/runs/, LATEST's content or None)."""
    runs = {k.split("/")[2] for k in keys(env, BUCKET, f"{prefix}/runs/")}
    try:
        latest = client(env).get_object(Bucket=BUCKET, Key=f"{prefix}/LATEST")["Body"].read()
    except client(env).exceptions.NoSuchKey:
        return runs, None
    return runs, latest.decode().strip()


def metrics_show_no_success(folder: Path, code: int) -> None:
    """The scorer's .prom file (if written) records exit `code` and no successful run."""
    from prometheus_client.parser import text_string_to_metric_families

    path = folder / "batch_score.prom"
    if not path.exists():
        return
    values = {
        s.name: s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }
    assert values["batch_score_last_exit_code"] == code, values
    assert values["batch_score_last_success_timestamp_seconds"] == 0, values
