"""APScheduler wiring: a cron trigger runs the scorer (--new-only) in a subprocess; knows no ML."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

from batch.core.errors import EXIT_CODES, ConfigError, LockHeld
from batch.core.jsontext import dumps
from batch.settings import SCORE_FIELDS, Settings, flag_name
from batch.storage import fs
from batch.storage.atomic import write_atomic
from batch.storage.locks import describe_holder

log = logging.getLogger(__name__)

JOB_ID = "nightly-score"
HEARTBEAT = "heartbeat.json"
SCHEDULER_LOCK = ".scheduler.lock"  # beside the run lock (.lock): one scheduler per output folder
# Everything a scoring run takes, except what the scheduler sets itself (inputs, --new-only).
PASSED_ON = [f for f in SCORE_FIELDS if f not in ("input", "new_only")]
EXIT_REASONS = EXIT_CODES  # what each exit code of a scoring run means


DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]  # cron: 0 (or 7) = Sunday


def cron_weekdays(field: str) -> str:
    """A cron day-of-week field (0/7 = Sunday, names, ranges, steps) as APScheduler day names.

    APScheduler 3 numbers weekdays from Monday = 0, so numbers must not be passed through.
    """
    days: set[int] = set()
    for part in field.lower().split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            lo, hi = 0, 6
        else:
            ends = [_day_number(x) for x in base.split("-", 1)]
            lo, hi = (ends[0], ends[0] if not step_text else 6) if len(ends) == 1 else ends
            if lo > hi and hi == 0:
                hi = 7  # "5-7" or "fri-sun" written with 0
        if step < 1 or lo > hi:
            raise ValueError(f"bad day-of-week {part!r}")
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(DAY_NAMES[d] for d in sorted(days))


def _day_number(text: str) -> int:
    if text in DAY_NAMES:
        return DAY_NAMES.index(text)
    number = int(text)  # ValueError for anything else
    if not 0 <= number <= 7:
        raise ValueError(f"day-of-week {number} is not 0-7")
    return number


class OncePerWallClock(BaseTrigger):
    """A cron trigger that fires at most once per local wall-clock time across DST changes.

    When clocks go back, an hour of local times happens twice; APScheduler's CronTrigger fires
    a daily 02:30 at both (and, asked again from inside the repeated hour, returns a time before
    the one it was asked for). This wrapper skips the second occurrence, so a daily schedule
    fires once on that day. When clocks go forward, a time in the skipped hour fires at the
    same distance after the change (02:30 at 03:30), once, as CronTrigger does.
    """

    def __init__(self, inner: BaseTrigger, timezone: str) -> None:
        self.inner = inner
        self.timezone = ZoneInfo(timezone)

    def get_next_fire_time(
        self, previous_fire_time: dt.datetime | None, now: dt.datetime
    ) -> dt.datetime | None:
        prev, start = previous_fire_time, now
        for _ in range(48):  # each round leaves one repeated hour behind
            fire = self.inner.get_next_fire_time(prev, start)
            if fire is None:
                return None
            # Asked from inside a repeated hour, CronTrigger can answer a time at or before the
            # one it was asked from; that answer is never right.
            backwards = fire <= prev if prev is not None else fire < start
            shift = repeat_shift(fire, self.timezone)
            if shift is None and not backwards:
                return fire
            prev, start = None, max(fire, start) + (shift or dt.timedelta(minutes=1))
        return None

    def __str__(self) -> str:
        return f"once per wall-clock time ({self.inner})"


def repeat_shift(moment: dt.datetime, timezone: ZoneInfo) -> dt.timedelta | None:
    """How much later clocks show the same time again, when `moment` is the second occurrence
    of a local time repeated by a DST change (clocks going back); None otherwise."""
    local = moment.astimezone(timezone)
    wall = local.replace(tzinfo=None)
    first = wall.replace(tzinfo=timezone, fold=0)
    second = wall.replace(tzinfo=timezone, fold=1)
    offset_first, offset_second = first.utcoffset(), second.utcoffset()
    if offset_first == offset_second or local.utcoffset() != offset_second:
        return None
    return offset_first - offset_second


def trigger(expression: str, timezone: str, now: dt.datetime | None = None):
    """A trigger with cron's meaning: 5 standard fields (or 6, seconds first); ConfigError if bad.

    As in cron, when both day-of-month and day-of-week are restricted, either one matching fires.
    An expression that can never fire (30 February) is refused too, and a daily time in the hour
    that a DST change repeats fires once (see OncePerWallClock).
    """
    cron = _cron_trigger(expression, timezone)
    if cron.get_next_fire_time(None, now or _now()) is None:
        raise ConfigError(
            f"the cron expression {expression!r} (--schedule / BATCH_SCHEDULE) "
            "never fires (no such date, e.g. 30 February); choose days that exist"
        )
    return cron


def _cron_trigger(expression: str, timezone: str):
    """The trigger of trigger(), without the check that it ever fires."""
    from apscheduler.triggers.combining import OrTrigger
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    names = ["minute", "hour", "day", "month", "day_of_week"]
    if len(fields) == 6:
        names = ["second"] + names
    elif len(fields) != 5:
        raise ConfigError(
            f"invalid cron expression {expression!r} (--schedule / BATCH_SCHEDULE): "
            f"expected 5 fields (minute hour day month weekday), got {len(fields)}"
        )
    values = dict(zip(names, fields))
    try:
        values["day_of_week"] = cron_weekdays(values["day_of_week"])
        if "second" not in values:
            values["second"] = "0"
        if fields[-3] != "*" and fields[-1] != "*":
            by_day = dict(values, day_of_week="*")
            by_weekday = dict(values, day="*")
            return OncePerWallClock(
                OrTrigger(
                    [
                        CronTrigger(timezone=timezone, **by_day),
                        CronTrigger(timezone=timezone, **by_weekday),
                    ]
                ),
                timezone,
            )
        return OncePerWallClock(CronTrigger(timezone=timezone, **values), timezone)
    except (ValueError, TypeError, LookupError) as exc:
        raise ConfigError(
            f"invalid cron expression {expression!r} (--schedule / BATCH_SCHEDULE): {exc}"
        ) from None


def scorer_command(settings: Settings) -> list[str]:
    """The scorer's command line carrying this scheduler's resolved settings."""
    cmd = [sys.executable, "-m", "jobs.score", "--new-only"]
    for entry in settings.input:
        cmd += ["--input", entry]
    for name in PASSED_ON:
        value = getattr(settings, name)
        if value is not None:
            cmd += [flag_name(name), str(value)]
    return cmd


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(t: dt.datetime | None) -> str | None:
    return t.astimezone(dt.UTC).isoformat(timespec="seconds") if t else None


def read_heartbeat(output_dir: Path) -> dict[str, Any]:
    """The heartbeat file's content; {} when it is missing or damaged (see heartbeat_problem)."""
    data, _ = _load_heartbeat(output_dir)
    return data


def heartbeat_problem(output_dir: Path) -> str | None:
    """Why heartbeat.json cannot be used (missing, not JSON, wrong shape), or None."""
    return _load_heartbeat(output_dir)[1]


def _load_heartbeat(output_dir: Path) -> tuple[dict[str, Any], str | None]:
    path = fs.path(output_dir) / HEARTBEAT
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}, f"no heartbeat in {path}"
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or " ".join(str(exc).split())
        return {}, f"the heartbeat {path} is damaged ({reason})"
    if not isinstance(data, dict):
        return {}, f"the heartbeat {path} is damaged (not a JSON object)"
    for key in ("updated_at", "last_success_at", "last_run_at", "stopped_at"):
        value = data.get(key)
        if value is None:
            continue
        try:
            parsed = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            return {}, f"the heartbeat {path} is damaged ({key} is not a time: {value!r:.40})"
    return data, None


def last_success(output_dir: Path) -> dt.datetime | None:
    """When the last successful scheduled run started (heartbeat), or the newest run in runs/."""
    times = []
    beat = read_heartbeat(output_dir).get("last_success_at")
    if beat:
        times.append(dt.datetime.fromisoformat(beat))
    runs = fs.path(output_dir) / "runs"
    if runs.is_dir():
        for run in runs.iterdir():
            if (run / "_SUCCESS").is_file():
                try:
                    times.append(
                        dt.datetime.strptime(run.name[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
                    )
                except ValueError:
                    continue
    return max(times) if times else None


def missed_fire(cron, since: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
    """The first scheduled time after `since` if it has passed (None: nothing was missed)."""
    if since is None:
        return now  # never ran: run now
    nxt = cron.get_next_fire_time(None, since + dt.timedelta(seconds=1))
    return nxt if nxt is not None and nxt <= now else None


def health(settings: Settings) -> tuple[bool, str]:
    """Whether the scheduler runs and its heartbeat is fresh (for container health checks)."""
    beat, problem = _load_heartbeat(settings.output_dir)
    if problem:
        return False, f"unhealthy: {problem}; the scheduler rewrites it when it runs"
    if beat.get("stopped_at"):
        return False, (
            f"unhealthy: the scheduler (pid {beat.get('pid', '?')}) stopped at "
            f"{beat['stopped_at']}; start it again"
        )
    if not beat.get("updated_at"):
        return False, f"unhealthy: no heartbeat time in {fs.path(settings.output_dir) / HEARTBEAT}"
    age = (_now() - dt.datetime.fromisoformat(beat["updated_at"])).total_seconds()
    limit = max(3 * settings.heartbeat_seconds, 10.0)
    if age > limit:
        return False, (
            f"unhealthy: the heartbeat is {age:.0f} s old (limit {limit:.0f} s), so "
            "the scheduler is stuck or gone"
        )
    return True, (
        f"healthy: heartbeat {age:.0f} s old, last run {beat.get('last_run_at')} "
        f"({beat.get('last_run_status')}), next run {beat.get('next_run_at')}"
    )


class NightlyScorer:
    """The scheduler process: cron fires, heartbeat, catch-up at start, graceful stop."""

    def __init__(self, settings: Settings) -> None:
        from apscheduler.schedulers.blocking import BlockingScheduler

        self.settings = settings
        self.cron = trigger(settings.schedule, settings.timezone)
        self.scheduler = BlockingScheduler(timezone=settings.timezone)
        self.output_dir = fs.path(settings.output_dir)
        beat, problem = _load_heartbeat(self.output_dir)
        if problem and (self.output_dir / HEARTBEAT).exists():
            log.warning("%s; ignoring it (it is rewritten now)", problem)
        self.state: dict[str, Any] = {k: v for k, v in beat.items() if k.startswith("last_")}
        self.lock = fs.lock(self.output_dir / SCHEDULER_LOCK)
        self.stopped_at: dt.datetime | None = None
        self.running = threading.Lock()
        self.state_lock = threading.Lock()  # the fire and the heartbeat run on different threads
        self.child: subprocess.Popen | None = None
        self.stopping = False
        self.metrics_lock = threading.Lock()
        self.down = False  # batch_scheduler.prom says up 0: written once, at a clean stop

    # -- one fire ------------------------------------------------------------------------------
    def fire(self) -> None:
        with self.running:
            if self.stopping:
                return
            started = _now()
            self._update(last_run_at=_iso(started), last_run_status="running")
            self.beat()
            cmd = scorer_command(self.settings)
            log.info("scheduled run starting: %s", " ".join(cmd[1:]))
            try:
                self.child = subprocess.Popen(
                    cmd, stdout=subprocess.PIPE, text=True, start_new_session=True
                )
                out, _ = self.child.communicate()
                code = self.child.returncode
            except OSError as exc:
                out, code = "", 1
                log.error("could not start the scorer: %s", exc)
            finally:
                self.child = None
            summary = _last_json(out)
            reason = EXIT_REASONS.get(code, f"killed by signal {-code}" if code < 0 else "unknown")
            if code == 0:
                self._update(last_success_at=_iso(started), last_run_status="succeeded")
                log.info("scheduled run finished: %s", json.dumps(summary))
            else:
                self._update(last_run_status=f"failed: {reason}")
                log.error(
                    "scheduled run failed with exit %s (%s): %s; the scheduler keeps going",
                    code,
                    reason,
                    summary.get("error", "see the log above"),
                )
            self._update(last_run_exit_code=code, last_run_summary=summary)
            self.apply_retention()
            self.beat()

    def apply_retention(self) -> None:
        """Prune old runs after a fire when --retention / --retention-days ask for it."""
        keep, days = self.settings.retention, self.settings.retention_days
        if keep is None and days is None:
            return
        from batch.core.errors import BatchError
        from batch.ops.retention import prune

        try:
            plan = prune(self.output_dir, keep=keep, older_than_days=days)
        except BatchError as exc:  # e.g. an ad hoc run holds the output lock: next night then
            log.warning("retention skipped this time: %s", exc)
            return
        except OSError as exc:
            log.warning("retention could not remove old runs: %s", exc)
            return
        if plan.folders or plan.log_lines:
            log.info(
                "retention removed %d run folder(s) (%s) and %d log line(s)",
                len(plan.folders),
                ", ".join(r["run_dir"] for r in plan.folders),
                len(plan.log_lines),
            )

    def _update(self, **values: Any) -> None:
        with self.state_lock:
            self.state.update(values)

    def beat(self) -> None:
        """Rewrite the heartbeat file (last and next run), atomically."""
        job = self.scheduler.get_job(JOB_ID)
        nxt = getattr(job, "next_run_time", None) if job else None
        with self.state_lock:
            state = dict(self.state)
        data = {
            "pid": os.getpid(),
            "updated_at": _iso(_now()),
            "schedule": self.settings.schedule,
            "timezone": self.settings.timezone,
            "next_run_at": _iso(nxt),
            **state,
        }
        if self.stopped_at is not None:  # --health says unhealthy from the stop on
            data.update(stopped_at=_iso(self.stopped_at), next_run_at=None)
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(self.output_dir / HEARTBEAT, dumps(data, indent=2) + "\n")
        except OSError as exc:
            log.warning("cannot write the heartbeat: %s", exc)
        self.write_metrics(up=self.stopped_at is None, next_fire=nxt)

    def write_metrics(self, up: bool, next_fire: dt.datetime | None) -> None:
        """batch_scheduler.prom: up, heartbeat time and next fire (a failure only warns)."""
        from batch.ops.metrics import write_scheduler_metrics

        # A heartbeat still in flight at shutdown must not write up 1 over the final up 0.
        with self.metrics_lock:
            if self.down:
                return
            self.down = not up
            try:
                write_scheduler_metrics(self.settings.metrics_folder, up, _now(), next_fire)
            except OSError as exc:
                log.warning("cannot write the scheduler metrics: %s", exc)

    # -- the process ------------------------------------------------------------------------------
    def add_jobs(self, run_now: bool = False) -> None:
        """The scoring job (first fire now when asked or when a fire was missed) and the heartbeat."""
        now = _now()
        since = last_success(self.output_dir)
        missed = missed_fire(self.cron, since, now)
        first = None
        if run_now:
            first = now
            log.info("--run-now: running once at start")
        elif missed is not None and since is None:
            first = now
            log.info("no successful run yet: running once now")
        elif missed is not None:
            first = now
            log.info(
                "catch-up: the run due at %s did not happen (scheduler down?); running now",
                _iso(missed),
            )
        else:
            log.info("no missed run: last successful run %s, next fire on schedule", _iso(since))
        self.scheduler.add_job(
            self.fire,
            self.cron,
            id=JOB_ID,
            name="score new inputs",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=self.settings.misfire_grace_seconds,
            replace_existing=True,
            **({"next_run_time": first} if first else {}),
        )
        self.scheduler.add_job(
            self.beat,
            "interval",
            seconds=self.settings.heartbeat_seconds,
            id="heartbeat",
            coalesce=True,
            max_instances=1,
            next_run_time=now,
        )

    def take_lock(self) -> None:
        """One scheduler per output directory: LockHeld (exit 6) naming the one already running."""
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": _iso(_now())}
        from batch.storage.rundir import writing

        with writing(self.output_dir, "the scheduler did not start"):
            self.output_dir.mkdir(parents=True, exist_ok=True)
            got = self.lock.acquire(blocking=False, holder=me)
        if not got:
            desc = describe_holder(self.lock.holder())
            raise LockHeld(
                f"another scheduler ({desc}) already runs on {self.output_dir}, so "
                "this one did not start; stop that one first, or give this one "
                "another --output-dir"
            )

    def serve(self, run_now: bool = False) -> int:
        """Run until SIGTERM/SIGINT; a run in progress is let finish. Returns the exit code (0)."""
        self.take_lock()
        try:
            return self._serve(run_now)
        finally:
            self.lock.release()

    def _serve(self, run_now: bool) -> int:
        now = _now()
        self.add_jobs(run_now)
        fires, t = [], now
        for _ in range(3):
            t = self.cron.get_next_fire_time(None, t + dt.timedelta(seconds=1))
            if t is None:
                break
            fires.append(_iso(t))
        log.info(
            "schedule %r (%s): next fires %s",
            self.settings.schedule,
            self.settings.timezone,
            ", ".join(fires),
        )
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.scheduler.start()  # blocks until _stop
        self.beat()  # records the stop: --health is unhealthy from now on
        if self.running.locked():
            log.info(
                "waiting for the run in progress to finish (send the signal again to abort it)"
            )
        with self.running:
            pass
        self.beat()  # the finished run's outcome, still marked stopped
        self.write_metrics(up=False, next_fire=None)  # a clean stop: up 0, not a stale heartbeat
        log.info("scheduler stopped")
        return 0

    def _stop(self, signum, frame) -> None:
        if self.stopping:
            child = self.child
            if child is not None:
                log.warning(
                    "aborting the run in progress (pid %s); it leaves no partial output", child.pid
                )
                child.terminate()
            return
        self.stopping = True
        self.stopped_at = _now()
        log.info("%s received: no new fires", signal.Signals(signum).name)
        self.scheduler.shutdown(wait=False)


def _last_json(out: str | None) -> dict[str, Any]:
    for line in reversed((out or "").strip().splitlines()):
        try:
            value = json.loads(line)
            if isinstance(value, dict):
                return value
        except ValueError:
            continue
    return {}
