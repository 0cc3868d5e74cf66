"""The scheduler's edges (issues 20 and 21): a schedule firing too often is refused, fires that
keep failing to start make --health unhealthy, and a run that died with a killed scheduler is
recorded as failed by the next one. Real APScheduler in a real `python -m jobs.schedule`."""

from __future__ import annotations

import datetime as dt
import json
import signal
import time
from pathlib import Path

import pytest

from batch.schedule import heartbeat
from tests.helpers import one_error_sentence, run_cli
from tests.scheduler_process import beat_pid, started_schedulers, write_heartbeat


@pytest.fixture
def scheduler_factory():
    with started_schedulers() as start:
        yield start


def test_a_schedule_firing_more_often_than_the_minimum_exits_2(tmp_path):
    res = run_cli(
        "jobs.schedule",
        "--output-dir",
        tmp_path / "out",
        "--schedule",
        "0,1 5 15 * *",  # two fires a minute apart once a month
        "--min-schedule-interval-s",
        "120",
    )
    assert res.code == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert "fires every 60 s, more often than the minimum of 120 s" in one_error_sentence(
        res.stderr
    )
    res = run_cli("jobs.schedule", "--output-dir", tmp_path / "out", "--schedule", "*/5 * * * * *")
    assert res.code == 2 and "more often than the minimum of 60 s" in res.stderr
    # Out of its documented range: exit 2 naming the setting.
    res = run_cli("jobs.schedule", "--health", "--min-schedule-interval-s", "0")
    assert res.code == 2 and "min_schedule_interval_s" in res.stderr.lower().replace("-", "_")


def test_health_turns_unhealthy_when_fires_keep_failing_to_start(tmp_path, scheduler_factory):
    """No model in the registry: every fire's scorer refuses to start (exit 4)."""
    out, inputs = tmp_path / "out", tmp_path / "in"
    inputs.mkdir()
    write_heartbeat(out, dt.datetime.now(dt.UTC))  # a recent success: healthy to begin with
    s = scheduler_factory(tmp_path / "no-models", out, inputs)
    s.wait_for(lambda: beat_pid(out) == s.proc.pid, what="the first heartbeat")
    assert run_cli("jobs.schedule", "--health", "--output-dir", out).code == 0

    def failed_starts() -> int:
        beat = heartbeat.read_heartbeat(out)
        return (beat.last_failed_starts or 0) if beat else 0

    s.wait_for(lambda: failed_starts() >= 3, timeout=120, what="three fires that did not start")
    res = run_cli("jobs.schedule", "--health", "--output-dir", out)
    assert res.code == 1, res.stdout + res.stderr
    assert "did not start" in res.stderr and "model problem" in res.stderr, res.stderr
    assert s.proc.poll() is None  # the scheduler itself goes on
    assert s.stop() == 0


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_run_killed_with_its_scheduler_is_failed_on_restart(
    models, tmp_path, write_csv, scheduler_factory
):
    write_csv("a.csv", "rm\n6\n")
    out = tmp_path / "out"
    write_heartbeat(out, dt.datetime.now(dt.UTC))  # a recent success: no catch-up on restart
    first = scheduler_factory(models, out, tmp_path / "in", "--run-now", schedule="0 0 1 1 *")
    first.wait_for(lambda: "scheduled run starting" in first.log, what="the run to start")
    first.wait_for(lambda: children(first.proc.pid), timeout=10, what="the scorer process")
    (scorer,) = children(first.proc.pid)
    first.proc.send_signal(signal.SIGKILL)  # the scheduler dies mid-run, without a word
    first.proc.wait()
    beat = heartbeat.read_heartbeat(out)
    assert beat is not None and beat.last_run_status == "running"
    deadline = time.monotonic() + 10
    while alive(scorer) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(scorer), "the scorer outlived its scheduler"
    assert not (out / "runs").exists() or not list((out / "runs").iterdir())

    second = scheduler_factory(models, out, tmp_path / "in", schedule="0 0 1 1 *")
    second.wait_for(lambda: beat_pid(out) == second.proc.pid, what="the restarted heartbeat")
    beat = heartbeat.read_heartbeat(out)
    assert beat.last_run_status == "failed: the scheduler died during the run"
    assert beat.last_run_exit_code == 130
    line = json.loads((out / "runs.jsonl").read_text().splitlines()[-1])
    assert (line["status"], line["exit_code"]) == ("failed", 130)
    assert "the scheduler was stopped during the run" in line["error"]
    prom = (out / "metrics" / "batch_score.prom").read_text()
    assert "batch_score_last_exit_code 130" in prom or 'exit_code="130"' in prom, prom
    assert "the scheduler was stopped during the run" in second.log
    # ... and it goes on: healthy, and a later run is recorded once (not marked failed again).
    assert run_cli("jobs.schedule", "--health", "--output-dir", out).code == 0
    assert second.stop() == 0
    assert (out / "runs.jsonl").read_text().count("the scheduler was stopped during") == 1
