"""The scheduler's clock and pulse: what a cron line means, and the heartbeat --health reads.

Scheduled runs themselves (fires, failures, signals, catch-up) are in test_schedule.py.
"""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from batch.core.errors import ConfigError
from batch.schedule import cron
from tests.helpers import run_cli
from tests.scheduler_process import beat_pid, started_quietly, started_schedulers, write_heartbeat


@pytest.fixture
def scheduler_factory():
    with started_schedulers() as start:
        yield start


# -- what a cron line means ----------------------------------------------------------------------


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


# -- the heartbeat and --health ------------------------------------------------------------------


def test_health_check(tmp_path):
    out = tmp_path / "out"
    res = run_cli("jobs.schedule", "--health", "--output-dir", out)
    assert res.code == 1 and "no heartbeat" in res.stderr
    write_heartbeat(out, dt.datetime.now(dt.UTC))
    res = run_cli("jobs.schedule", "--health", "--output-dir", out)
    assert res.code == 0 and "healthy" in res.stdout
    write_heartbeat(out, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10))
    assert run_cli("jobs.schedule", "--health", "--output-dir", out).code == 1


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
        "",
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
        lambda: beat_pid(out) == s.proc.pid,
        what="the rewritten heartbeat",
    )
    assert "is damaged" in s.log and "ignoring it" in s.log and "Traceback" not in s.log
    assert run_cli("jobs.schedule", "--health", "--output-dir", out).code == 0
    assert s.stop() == 0


@pytest.mark.parametrize(
    "change, words",
    [
        ({"pid": None}, "field 'pid'"),
        ({"updated_at": "2026-01-01T00:00:00+02:00"}, "field 'updated_at' must be a UTC time"),
        ({"next_run_at": "later"}, "field 'next_run_at'"),
        ({"last_run_exit_code": "3"}, "field 'last_run_exit_code' must be a whole number"),
        ({"schema_version": 99}, "newer than"),
    ],
)
def test_a_heartbeat_with_a_bad_field_is_refused_naming_it(tmp_path, change, words):
    """The heartbeat is read whole as a SchedulerHeartbeat: one bad field refuses it all."""
    out = tmp_path / "out"
    write_heartbeat(out, dt.datetime.now(dt.UTC))
    beat = json.loads((out / "heartbeat.json").read_text())
    beat.update(change)
    (out / "heartbeat.json").write_text(json.dumps(beat))
    res = run_cli("jobs.schedule", "--health", "--output-dir", out)
    assert res.code == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith("unhealthy: heartbeat.json at ") and words in res.stderr


def test_a_heartbeat_from_before_schema_versions_is_read(tmp_path):
    """A heartbeat written before documents had schema_version is still healthy when fresh."""
    out = tmp_path / "out"
    write_heartbeat(out, dt.datetime.now(dt.UTC))
    beat = json.loads((out / "heartbeat.json").read_text())
    del beat["schema_version"]
    (out / "heartbeat.json").write_text(json.dumps(beat, indent=2))
    res = run_cli("jobs.schedule", "--health", "--output-dir", out)
    assert res.code == 0 and res.stdout.startswith("healthy:"), res.stderr
