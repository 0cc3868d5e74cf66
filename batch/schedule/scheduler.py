"""APScheduler wiring: a cron trigger runs the scorer (--new-only) in a subprocess; knows no ML.

The cron meaning lives in batch.schedule.cron, the subprocess run in batch.schedule.runner and
the heartbeat in batch.schedule.heartbeat; this module starts, fires and stops them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import socket
import threading
from types import FrameType

from batch.core.errors import LockHeld
from batch.schedule.cron import check_interval, latest_fire, missed_fire, trigger
from batch.schedule.heartbeat import Heartbeat, iso, last_success, record_dead_run, utc_now
from batch.schedule.runner import ScorerProcess, apply_retention, exit_reason
from batch.settings import Settings
from batch.storage import fs
from batch.storage.locks import describe_holder

log = logging.getLogger(__name__)

JOB_ID = "nightly-score"
SCHEDULER_LOCK = ".scheduler.lock"  # beside the run lock (.lock): one scheduler per output folder
# A scorer that exits with one of these refused to start (configuration, model, lock, location):
# a fire that did not get a run going, like a missed one.
NOT_STARTED = frozenset({1, 2, 4, 6, 7})


class NightlyScorer:
    """The scheduler process: cron fires, heartbeat, catch-up at start, graceful stop."""

    def __init__(self, settings: Settings) -> None:
        from apscheduler.schedulers.blocking import BlockingScheduler

        self.settings = settings
        self.cron = trigger(settings.schedule, settings.timezone)
        check_interval(settings.schedule, self.cron, settings.min_schedule_interval_s)
        self.scheduler = BlockingScheduler(timezone=settings.timezone)
        self.output_dir: fs.Location = settings.output_dir
        self.heartbeat = Heartbeat(settings)
        self.lock = fs.lock(self.output_dir / SCHEDULER_LOCK)
        self.running = threading.Lock()
        self.scorer = ScorerProcess()
        self.stopping = False
        # The fire at start (catch-up, --run-now) stands for the missed time, if any.
        self.at_start = False
        self.start_nominal: dt.datetime | None = None

    # -- one fire ------------------------------------------------------------------------------
    def fire(self) -> None:
        with self.running:
            if self.stopping:
                return
            started = utc_now()
            self.heartbeat.update(last_run_at=iso(started), last_run_status="running")
            self.beat()
            code, summary = self.scorer.run(self.settings, self._nominal_time(started))
            if code == 0:
                self.heartbeat.update(last_success_at=iso(started), last_run_status="succeeded")
                log.info("scheduled run finished: %s", json.dumps(summary))
            else:
                reason = exit_reason(code)
                self.heartbeat.update(last_run_status=f"failed: {reason}")
                log.error(
                    "scheduled run failed with exit %s (%s): %s; the scheduler keeps going",
                    code,
                    reason,
                    summary.get("error", "see the log above"),
                )
            self.heartbeat.update(last_run_exit_code=code, last_run_summary=summary)
            if code in NOT_STARTED:
                self.failed_start()
            else:
                self.heartbeat.update(last_failed_starts=0)
            apply_retention(self.settings)
            self.beat()

    def failed_start(self, event: object = None) -> None:
        """Count one more fire in a row that did not get a run going (--health turns unhealthy
        after a few); called after a refused run, and by APScheduler for a missed fire."""
        if event is not None and getattr(event, "job_id", JOB_ID) != JOB_ID:
            return  # a late heartbeat is not a fire
        if event is not None:
            log.error(
                "the scheduled run due at %s did not start (missed: later than "
                "--misfire-grace-seconds, or the previous run was still going)",
                iso(getattr(event, "scheduled_run_time", None)),
            )
        with self.heartbeat.state_lock:
            count = int(self.heartbeat.state.get("last_failed_starts") or 0) + 1
            self.heartbeat.state["last_failed_starts"] = count

    def _nominal_time(self, now: dt.datetime) -> dt.datetime | None:
        """The scheduled time this fire stands for (the run's nominalTime): the cron time just
        passed; at start, the missed time of a catch-up (none for --run-now or a first run)."""
        if self.at_start:
            self.at_start = False
            return self.start_nominal
        grace = dt.timedelta(seconds=self.settings.misfire_grace_seconds)
        return latest_fire(self.cron, now, grace)

    def beat(self) -> None:
        """Rewrite the heartbeat with the job's next fire (none once stopped)."""
        job = self.scheduler.get_job(JOB_ID)
        nxt = getattr(job, "next_run_time", None) if job else None
        self.heartbeat.write(nxt)

    # -- the process ------------------------------------------------------------------------------
    def add_jobs(self, run_now: bool = False) -> None:
        """The scoring job (first fire now when asked or when a fire was missed); the heartbeat."""
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED

        self.scheduler.add_listener(self.failed_start, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        now = utc_now()
        first = now if self._run_at_start(run_now, now) else None
        self.at_start = first is not None
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

    def _run_at_start(self, run_now: bool, now: dt.datetime) -> bool:
        """Whether to fire once right at start (--run-now, no run yet, or a missed fire), logged."""
        since = last_success(self.output_dir)
        missed = missed_fire(self.cron, since, now)
        if run_now:
            log.info("--run-now: running once at start")
        elif missed is not None and since is None:
            log.info("no successful run yet: running once now")
        elif missed is not None:
            self.start_nominal = missed
            log.info(
                "catch-up: the run due at %s did not happen (scheduler down?); running now",
                iso(missed),
            )
        else:
            log.info("no missed run: last successful run %s, next fire on schedule", iso(since))
            return False
        return True

    def take_lock(self) -> None:
        """One scheduler per output directory: LockHeld (exit 6) naming the one already running."""
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": iso(utc_now())}
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
            # Under the lock: a run still marked running was this scheduler's predecessor's,
            # which died with it (killed): record it as failed before anything else.
            record_dead_run(self.settings, self.heartbeat)
            return self._serve(run_now)
        finally:
            self.lock.release()

    def _serve(self, run_now: bool) -> int:
        self.add_jobs(run_now)
        log.info(
            "schedule %r (%s): next fires %s",
            self.settings.schedule,
            self.settings.timezone,
            ", ".join(self._next_fires(3)),
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
        # A clean stop: up 0, not a stale heartbeat.
        self.heartbeat.write_metrics(up=False, next_fire=None)
        log.info("scheduler stopped")
        return 0

    def _next_fires(self, count: int) -> list[str]:
        """The next `count` fire times from now (fewer when the schedule ends), for the log."""
        fires: list[str] = []
        t = utc_now()
        for _ in range(count):
            nxt = self.cron.get_next_fire_time(None, t + dt.timedelta(seconds=1))
            if nxt is None:
                break
            fires.append(iso(nxt))
            t = nxt
        return fires

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            self.scorer.abort()
            return
        self.stopping = True
        self.heartbeat.stopped_at = utc_now()
        log.info("%s received: no new fires", signal.Signals(signum).name)
        self.scheduler.shutdown(wait=False)
