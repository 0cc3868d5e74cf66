"""A real scheduler for the tests: `python -m jobs.schedule` as a subprocess, and heartbeats.

Shared by tests/test_schedule.py (scheduled runs) and tests/test_schedule_health.py (the
heartbeat and --health).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from batch.core.documents import SchedulerHeartbeat, dump
from batch.schedule import heartbeat
from tests.helpers import REPO

FAST = "*/3 * * * * *"  # every 3 seconds (6 fields: seconds first)


class Scheduler:
    """`python -m jobs.schedule` as a subprocess, its stderr collected line by line."""

    def __init__(self, models: Path, out: Path, inputs: Path, *extra, schedule: str = FAST):
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.out = out
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jobs.schedule",
                "--models-dir",
                str(models),
                "--output-dir",
                str(out),
                "--input",
                str(inputs),
                "--schedule",
                schedule,
                "--heartbeat-seconds",
                "1",
                # The tests' schedules fire every few seconds, below the production minimum.
                "--min-schedule-interval-s",
                "1",
                *map(str, extra),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def wait_for(self, predicate, timeout: float = 90, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            assert self.proc.poll() is None, f"scheduler exited early:\n{self.log}"
            time.sleep(0.2)
        pytest.fail(f"timed out waiting for {what}:\n{self.log[-4000:]}")

    def runs(self) -> list[Path]:
        runs = self.out / "runs"
        return sorted(runs.iterdir()) if runs.exists() else []

    def fires_finished(self) -> int:
        return self.log.count("scheduled run finished") + self.log.count("scheduled run failed")

    def stop(self, timeout: float = 120) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def started_schedulers() -> Iterator:
    """start(...) -> a Scheduler; every one started is killed on the way out."""
    started: list[Scheduler] = []

    def start(*args, **kwargs) -> Scheduler:
        s = Scheduler(*args, **kwargs)
        started.append(s)
        return s

    try:
        yield start
    finally:
        for s in started:
            s.kill()


def write_heartbeat(out: Path, last_success: dt.datetime) -> None:
    """The heartbeat a scheduler that last succeeded at `last_success` (and beat then) wrote."""
    out.mkdir(parents=True, exist_ok=True)
    at = last_success.astimezone(dt.UTC).isoformat(timespec="seconds")
    beat = SchedulerHeartbeat(
        pid=12345,
        updated_at=at,
        schedule="0 2 * * *",
        timezone="UTC",
        next_run_at=None,
        last_success_at=at,
    )
    (out / "heartbeat.json").write_text(dump(beat))


def beat_pid(out: Path) -> int | None:
    """The pid in the heartbeat, None while there is no usable one."""
    beat = heartbeat.read_heartbeat(out)
    return beat.pid if beat is not None else None


def started_quietly(scheduler_factory, models, tmp_path):
    """A scheduler with nothing to do for a year (a recent success: no catch-up run)."""
    out = tmp_path / "out"
    write_heartbeat(out, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    (tmp_path / "in").mkdir(exist_ok=True)
    s = scheduler_factory(models, out, tmp_path / "in", schedule="0 0 1 1 *")
    s.wait_for(lambda: beat_pid(out) == s.proc.pid, what="the first heartbeat")
    return s, out
