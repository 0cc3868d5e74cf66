"""The scheduler for real: a seconds-resolution cron trigger, real scorer runs, real signals.

What a cron line means and the heartbeat that --health reads are in test_schedule_health.py.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.core.errors import EXIT_CODES
from batch.schedule import heartbeat, runner
from batch.schedule import scheduler as scheduling
from tests.helpers import REPO, one_error_sentence, run_cli
from tests.scheduler_process import (
    Scheduler,
    beat_pid,
    started_quietly,
    started_schedulers,
    write_heartbeat,
)


@pytest.fixture
def scheduler_factory():
    with started_schedulers() as start:
        yield start


def scored_hashes(run: Path) -> list[str]:
    return [i["sha256"] for i in json.loads((run / "report.json").read_text())["inputs"]]


def test_fires_score_each_new_file_exactly_once(models, tmp_path, write_csv, scheduler_factory):
    write_csv("a.csv", "rm\n6\n")
    s = scheduler_factory(models, tmp_path / "out", tmp_path / "in")
    s.wait_for(lambda: len(s.runs()) == 1, what="the first run")  # no run ever: runs at start
    assert "no successful run yet: running once now" in s.log
    write_csv("b.csv", "rm\n7\n")  # arrives between fires
    s.wait_for(lambda: len(s.runs()) == 2, what="the run that picks up b.csv")
    fires = s.fires_finished()
    s.wait_for(lambda: s.fires_finished() >= fires + 2, what="two more fires")
    assert s.stop() == 0
    runs = s.runs()
    assert len(runs) == 2 and all((r / "_SUCCESS").exists() for r in runs)
    all_scored = [h for r in runs for h in scored_hashes(r)]
    assert len(all_scored) == len(set(all_scored)) == 2  # each file scored exactly once
    assert "nothing_new" in s.log
    assert "next fires" in s.log


def test_a_failed_run_does_not_stop_the_scheduler(models, tmp_path, write_csv, scheduler_factory):
    bad = tmp_path / "in" / "broken.parquet"
    bad.parent.mkdir()
    bad.write_bytes(b"PAR1 not really")
    s = scheduler_factory(models, tmp_path / "out", tmp_path / "in")
    s.wait_for(lambda: "failed with exit 3 (input problem)" in s.log, what="a failed fire")
    assert "broken.parquet" in s.log and "the scheduler keeps going" in s.log

    def failed_in_heartbeat() -> bool:
        # Read between fires: every 3 s the next fire marks the heartbeat 'running' again.
        beat = heartbeat.read_heartbeat(tmp_path / "out")
        return (
            beat is not None
            and beat.last_run_status == "failed: input problem"
            and beat.last_run_exit_code == 3
        )

    s.wait_for(failed_in_heartbeat, what="the heartbeat saying the fire failed (exit 3)")
    # Another run holds the output lock: the fire exits 6, the scheduler waits for the next one.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from pathlib import Path; from batch.storage.rundir import OutputDir; "
            f"OutputDir(Path({str(tmp_path / 'out')!r})).lock('adhoc'); print('locked', flush=True); "
            "time.sleep(120)",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        bad.unlink()
        write_csv("good.csv", "rm\n6\n")
        s.wait_for(
            lambda: f"exit 6 ({EXIT_CODES[6]})" in s.log, what="a fire that found the output locked"
        )
    finally:
        holder.kill()
        holder.wait()
    s.wait_for(lambda: len(s.runs()) == 1, what="a successful fire after the failures")
    assert s.stop() == 0


def scheduler_in_a_long_run(models, tmp_path, scheduler_factory) -> tuple[Scheduler, Path]:
    """A scheduler whose start-up run is busy with 300k rows in small batches (several seconds)."""
    (tmp_path / "in").mkdir()
    rooms = np.random.default_rng(0).uniform(4, 8, 300_000)
    pq.write_table(pa.table({"rm": rooms}), tmp_path / "in" / "big.parquet", row_group_size=20_000)
    out = tmp_path / "out"
    s = scheduler_factory(models, out, tmp_path / "in", "--chunk-rows", 300, schedule="0 0 1 1 *")
    s.wait_for(lambda: list(out.glob(".staging/*/predictions.parquet")), what="a run in progress")
    return s, out


def test_sigterm_lets_the_run_in_progress_finish_and_exits_0(models, tmp_path, scheduler_factory):
    s, out = scheduler_in_a_long_run(models, tmp_path, scheduler_factory)
    assert s.stop() == 0
    assert "waiting for the run in progress to finish" in s.log
    runs = s.runs()
    assert len(runs) == 1 and (runs[0] / "_SUCCESS").exists()
    assert not list(out.glob(".staging/*"))
    report = json.loads((runs[0] / "report.json").read_text())
    assert report["rows_scored"] == 300_000


def test_second_signal_aborts_the_run_leaving_no_partial_output(
    models, tmp_path, scheduler_factory
):
    s, out = scheduler_in_a_long_run(models, tmp_path, scheduler_factory)
    s.proc.send_signal(signal.SIGTERM)
    s.wait_for(lambda: "waiting for the run in progress" in s.log, what="the graceful stop")
    # Stopping is recorded at once: the health check does not stay green while it winds down.
    health = run_cli("jobs.schedule", "--health", "--output-dir", out)
    assert health.code == 1 and "stopped" in health.stderr
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=60) == 0
    assert "aborting the run in progress" in s.log
    assert s.runs() == [] and not list(out.glob(".staging/*"))


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--schedule", "not a cron"], "expected 5 fields"),
        (["--schedule", "61 * * * *"], "61"),
        (["--timezone", "Mars/Olympus"], "Mars/Olympus"),
        (["--schedule", "0 0 30 2 *"], "never fires"),  # 30 February
        (["--schedule", "0 0 31 4,6,9,11 *"], "never fires"),
    ],
)
def test_bad_cron_or_timezone_exits_2(tmp_path, flags, words):
    res = run_cli("jobs.schedule", "--output-dir", tmp_path / "out", *flags)
    assert res.code == 2
    assert words in one_error_sentence(res.stderr)


def test_catch_up_at_start_when_a_fire_was_missed(models, tmp_path, write_csv, scheduler_factory):
    write_csv("a.csv", "rm\n6\n")
    out = tmp_path / "out"
    now = dt.datetime.now(dt.UTC)
    write_heartbeat(out, now - dt.timedelta(days=800))  # a 1 January fire has passed since
    s = scheduler_factory(models, out, tmp_path / "in", schedule="0 0 1 1 *")
    s.wait_for(lambda: len(s.runs()) == 1, what="the catch-up run")
    assert "catch-up: the run due at" in s.log
    assert s.stop() == 0


def test_no_catch_up_when_no_fire_was_missed(models, tmp_path, write_csv, scheduler_factory):
    write_csv("a.csv", "rm\n6\n")
    out = tmp_path / "out"
    write_heartbeat(out, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    s = scheduler_factory(models, out, tmp_path / "in", schedule="0 0 1 1 *")
    s.wait_for(lambda: "no missed run" in s.log, what="the start-up decision")
    s.wait_for(lambda: beat_pid(out) == s.proc.pid, what="a heartbeat")
    time.sleep(2)
    assert s.runs() == [] and "scheduled run starting" not in s.log
    assert s.stop() == 0


def test_run_now_runs_at_start(models, tmp_path, write_csv, scheduler_factory):
    write_csv("a.csv", "rm\n6\n")
    out = tmp_path / "out"
    write_heartbeat(out, dt.datetime.now(dt.UTC))
    s = scheduler_factory(models, out, tmp_path / "in", "--run-now", schedule="0 0 1 1 *")
    s.wait_for(lambda: len(s.runs()) == 1, what="the --run-now run")
    assert s.stop() == 0


def test_job_settings_and_heartbeat(models, tmp_path, settings):
    s = settings(models_dir=models, schedule="*/5 * * * *", misfire_grace_seconds=1800)
    nightly = scheduling.NightlyScorer(s)
    nightly.add_jobs()
    job = nightly.scheduler.get_job(scheduling.JOB_ID)
    assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 1800)
    default = scheduling.NightlyScorer(settings(models_dir=models))
    default.add_jobs()
    assert default.scheduler.get_job(scheduling.JOB_ID).misfire_grace_time == 3600
    cmd = runner.scorer_command(s)
    assert cmd[1:4] == ["-m", "jobs.score", "--new-only"]
    assert "--models-dir" in cmd and str(models) in cmd


def test_scheduler_metrics_and_retention(models, tmp_path, write_csv, scheduler_factory):
    """batch_scheduler.prom says up with a next fire while it runs, up 0 after a clean stop;
    --retention 1 leaves only the newest run after each fire."""
    from prometheus_client.parser import text_string_to_metric_families

    def scheduler_values() -> dict[str, float]:
        path = tmp_path / "out" / "metrics" / "batch_scheduler.prom"
        if not path.is_file():
            return {}
        return {
            s.name: s.value
            for f in text_string_to_metric_families(path.read_text())
            for s in f.samples
        }

    write_csv("a.csv", "rm\n6\n")
    s = scheduler_factory(models, tmp_path / "out", tmp_path / "in", "--retention", "1")
    s.wait_for(lambda: len(s.runs()) == 1, what="the first run")
    first = s.runs()[0].name
    write_csv("b.csv", "rm\n7\n")
    s.wait_for(
        lambda: "retention removed 1 run folder(s)" in s.log,
        what="the second run, with the first one pruned",
    )
    assert len(s.runs()) == 1 and s.runs()[0].name != first
    up = scheduler_values()
    assert up["batch_scheduler_up"] == 1
    assert up["batch_scheduler_next_fire_timestamp_seconds"] > time.time() - 5
    assert abs(up["batch_scheduler_heartbeat_timestamp_seconds"] - time.time()) < 30
    assert (tmp_path / "out" / "metrics" / "batch_score.prom").is_file()
    assert s.stop() == 0
    down = scheduler_values()
    assert down["batch_scheduler_up"] == 0
    assert "batch_scheduler_next_fire_timestamp_seconds" not in down


def test_a_second_scheduler_on_the_same_output_exits_6_naming_the_first(
    models, tmp_path, scheduler_factory
):
    first, out = started_quietly(scheduler_factory, models, tmp_path)
    res = run_cli(
        "jobs.schedule",
        "--models-dir",
        models,
        "--output-dir",
        out,
        "--input",
        tmp_path / "in",
        "--schedule",
        "0 0 1 1 *",
        timeout=60,
    )
    assert res.code == 6, res.stderr
    assert "Traceback" not in res.stderr
    sentence = one_error_sentence(res.stderr)
    assert f"pid {first.proc.pid}" in sentence and str(out) in sentence
    assert first.proc.poll() is None  # the first one goes on
    assert beat_pid(out) == first.proc.pid
    assert first.stop() == 0
    # Once the first has stopped, a new one starts.
    second, _ = started_quietly(scheduler_factory, models, tmp_path)
    assert second.stop() == 0
