"""The scheduler for real: a seconds-resolution cron trigger, real scorer runs, real signals."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.core.errors import EXIT_CODES, ConfigError
from batch.schedule import cron, heartbeat, runner
from batch.schedule import scheduler as scheduling
from tests.helpers import REPO, one_error_sentence, run_cli

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


@pytest.fixture
def scheduler_factory():
    started: list[Scheduler] = []

    def start(*args, **kwargs) -> Scheduler:
        s = Scheduler(*args, **kwargs)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


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
    beat = heartbeat.read_heartbeat(tmp_path / "out")
    assert beat["last_run_status"] == "failed: input problem" and beat["last_run_exit_code"] == 3
    # Another run holds the output lock: the fire exits 6, the scheduler waits for the next one.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from batch.storage.rundir import OutputDir; "
            f"OutputDir({str(tmp_path / 'out')!r}).lock('adhoc'); print('locked', flush=True); "
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


def write_heartbeat(out: Path, last_success: dt.datetime) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "heartbeat.json").write_text(
        json.dumps(
            {"last_success_at": last_success.isoformat(), "updated_at": last_success.isoformat()}
        )
    )


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
    s.wait_for(lambda: heartbeat.read_heartbeat(out).get("pid") == s.proc.pid, what="a heartbeat")
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


def test_missed_fire_rule():
    daily = cron.trigger("0 2 * * *", "UTC")
    at = lambda text: dt.datetime.fromisoformat(text)  # noqa: E731
    assert cron.missed_fire(daily, None, at("2026-11-26T10:00:00+00:00")) is not None
    assert (
        cron.missed_fire(daily, at("2026-11-26T02:00:00+00:00"), at("2026-11-26T10:00:00+00:00"))
        is None
    )
    assert cron.missed_fire(
        daily, at("2026-11-25T02:00:00+00:00"), at("2026-11-26T10:00:00+00:00")
    ) == at("2026-11-26T02:00:00+00:00")
    berlin = cron.trigger("0 2 * * *", "Europe/Berlin")  # 01:00 UTC in winter
    assert (
        cron.missed_fire(berlin, at("2026-11-25T01:30:00+00:00"), at("2026-11-26T01:10:00+00:00"))
        is not None
    )


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


def test_health_check(tmp_path):
    out = tmp_path / "out"
    res = run_cli("jobs.schedule", "--health", "--output-dir", out)
    assert res.code == 1 and "no heartbeat" in res.stderr
    write_heartbeat(out, dt.datetime.now(dt.UTC))
    res = run_cli("jobs.schedule", "--health", "--output-dir", out)
    assert res.code == 0 and "healthy" in res.stdout
    write_heartbeat(out, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10))
    assert run_cli("jobs.schedule", "--health", "--output-dir", out).code == 1


def test_trigger_accepts_five_or_six_fields():
    assert cron.trigger("0 2 * * *", "UTC")
    assert cron.trigger("*/3 * * * * *", "UTC")
    with pytest.raises(ConfigError):
        cron.trigger("* * *", "UTC")


def test_cron_weekdays_mean_what_they_mean_in_cron():
    """APScheduler counts weekdays from Monday = 0; the scheduler speaks standard cron."""
    at = dt.datetime.fromisoformat
    fires = []
    t = at("2026-11-27T03:00:00+00:00")  # a Friday
    weekdays = cron.trigger("0 2 * * 1-5", "UTC")
    for _ in range(5):
        t = weekdays.get_next_fire_time(None, t + dt.timedelta(seconds=1))
        fires.append(t.strftime("%a"))
    assert fires == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    friday = at("2026-11-27T03:00:00+00:00")
    sunday = cron.trigger("0 2 * * 0", "UTC").get_next_fire_time(None, friday)
    assert sunday.strftime("%a") == "Sun"
    assert cron.trigger("0 2 * * 7", "UTC").get_next_fire_time(None, friday) == sunday
    assert cron.cron_weekdays("*/2") == "sun,tue,thu,sat"
    assert cron.cron_weekdays("fri-sun") == "sun,fri,sat"


def test_cron_day_of_month_or_weekday_as_in_cron():
    """'0 2 1 * 1' fires on the 1st and on every Monday (cron's OR), not on Mondays the 1st."""
    t = dt.datetime.fromisoformat("2026-11-27T03:00:00+00:00")
    either = cron.trigger("0 2 1 * 1", "UTC")
    days = []
    for _ in range(3):
        t = either.get_next_fire_time(None, t + dt.timedelta(seconds=1))
        days.append(t.strftime("%a %d"))
    assert days == ["Mon 30", "Tue 01", "Mon 07"]


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


def started_quietly(scheduler_factory, models, tmp_path):
    """A scheduler with nothing to do for a year (a recent success: no catch-up run)."""
    out = tmp_path / "out"
    write_heartbeat(out, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    (tmp_path / "in").mkdir(exist_ok=True)
    s = scheduler_factory(models, out, tmp_path / "in", schedule="0 0 1 1 *")
    s.wait_for(
        lambda: heartbeat.read_heartbeat(out).get("pid") == s.proc.pid, what="the first heartbeat"
    )
    return s, out


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
    assert heartbeat.read_heartbeat(out).get("pid") == first.proc.pid
    assert first.stop() == 0
    # Once the first has stopped, a new one starts.
    second, _ = started_quietly(scheduler_factory, models, tmp_path)
    assert second.stop() == 0


def test_a_stopped_scheduler_is_unhealthy_at_once(models, tmp_path, scheduler_factory):
    s, out = started_quietly(scheduler_factory, models, tmp_path)
    assert run_cli("jobs.schedule", "--health", "--output-dir", out).code == 0
    assert s.stop() == 0
    beat = json.loads((out / "heartbeat.json").read_text())
    assert beat["stopped_at"] and beat["next_run_at"] is None
    res = run_cli("jobs.schedule", "--health", "--output-dir", out)
    assert res.code == 1 and f"the scheduler (pid {s.proc.pid}) stopped at" in res.stderr
    # A new start is healthy again.
    s2, _ = started_quietly(scheduler_factory, models, tmp_path)
    assert "stopped_at" not in json.loads((out / "heartbeat.json").read_text())
    assert run_cli("jobs.schedule", "--health", "--output-dir", out).code == 0
    assert s2.stop() == 0


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[1, 2]",
        '"ok"',
        '{"updated_at": "yesterday"}',
        '{"updated_at": 5}',
        '{"updated_at": "2026-01-01T00:00:00"}',
        '{"last_success_at": "soon", "updated_at": null}',
    ],
)
def test_a_damaged_heartbeat_is_unhealthy_in_one_sentence(tmp_path, text):
    out = tmp_path / "out"
    out.mkdir()
    (out / "heartbeat.json").write_text(text)
    res = run_cli("jobs.schedule", "--health", "--output-dir", out)
    assert res.code == 1
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("unhealthy:"), res.stderr


def test_a_damaged_heartbeat_is_ignored_and_rewritten_at_start(models, tmp_path, scheduler_factory):
    out = tmp_path / "out"
    out.mkdir()
    (out / "heartbeat.json").write_text('{"last_success_at": "not a time"')
    (tmp_path / "in").mkdir()
    s = scheduler_factory(models, out, tmp_path / "in", schedule="0 0 1 1 *")
    s.wait_for(
        lambda: heartbeat.read_heartbeat(out).get("pid") == s.proc.pid,
        what="the rewritten heartbeat",
    )
    assert "is damaged" in s.log and "ignoring it" in s.log and "Traceback" not in s.log
    assert run_cli("jobs.schedule", "--health", "--output-dir", out).code == 0
    assert s.stop() == 0


def local_fire_days(expression: str, tz: str, start: dt.datetime, days: int) -> list[str]:
    """Every fire of the real trigger (APScheduler's CronTrigger inside) from `start` on,
    as local times, following the trigger the way APScheduler does (previous fire, now)."""
    trigger = cron.trigger(expression, tz, now=start)
    zone = ZoneInfo(tz)
    fires, prev, now = [], None, start
    end = start + dt.timedelta(days=days)
    while True:
        fire = trigger.get_next_fire_time(prev, now)
        if fire is None or fire >= end:
            return fires
        assert prev is None or fire > prev
        fires.append(fire.astimezone(zone).isoformat())
        prev, now = fire, fire + dt.timedelta(seconds=1)


@pytest.mark.parametrize(
    "expression", ["30 2 * * *", "0 2 * * *", "59 2 * * *", "0 3 * * *", "30 1 * * *"]
)
@pytest.mark.parametrize("change", ["2024-10-27", "2024-03-31", "2026-10-25", "2026-03-29"])
def test_a_daily_schedule_fires_once_every_local_day_across_dst(expression, change):
    """Europe/Berlin: clocks go back 03:00 -> 02:00 in October, forward 02:00 -> 03:00 in March."""
    tz = ZoneInfo("Europe/Berlin")
    day = dt.date.fromisoformat(change)
    start = dt.datetime.combine(day - dt.timedelta(days=3), dt.time(12), tzinfo=tz)
    fires = local_fire_days(expression, "Europe/Berlin", start, days=7)
    dates = [f[:10] for f in fires]
    expected = [(day + dt.timedelta(days=d)).isoformat() for d in range(-2, 5)]
    assert dates == expected, fires  # one fire per local day, none skipped, none doubled
    on_the_day = fires[2]
    hour, minute = map(int, expression.split()[1::-1])
    if hour != 2:  # outside the hour the change repeats or skips: the time as written
        assert dt.datetime.fromisoformat(on_the_day).astimezone(tz).hour == hour, fires
    elif change.endswith(("-27", "-25")):  # autumn: the first 02:xx (summer time) fires, once
        assert on_the_day == f"{change}T{hour:02d}:{minute:02d}:00+02:00", fires
    else:  # spring: 02:xx does not exist that day; it fires an hour later by the clock
        instant = dt.datetime.fromisoformat(on_the_day).astimezone(tz)
        assert (instant.hour, instant.minute) == (3, minute), fires
