"""The scheduler's heartbeat: heartbeat.json and batch_scheduler.prom, written and read back.

The running scheduler rewrites both on a timer and around each fire; --health, the catch-up at
start and a restarted scheduler read heartbeat.json back. The file is written and read only as a
`SchedulerHeartbeat` (batch.core.documents): a damaged one is refused whole, never half-read.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from typing import Any, overload

from batch.core.documents import DocumentError, SchedulerHeartbeat, dump, parse_heartbeat
from batch.settings import Settings
from batch.storage import fs
from batch.storage.location import Location

log = logging.getLogger(__name__)

HEARTBEAT = "heartbeat.json"
# --health is unhealthy once this many fires in a row did not get a run going.
FAILED_STARTS_UNHEALTHY = 3
DEAD_RUN_CODE = 130  # the run was stopped by a signal (the scheduler's death) and published nothing


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@overload
def iso(t: dt.datetime) -> str: ...
@overload
def iso(t: dt.datetime | None) -> str | None: ...
def iso(t: dt.datetime | None) -> str | None:
    """`t` in UTC, to the second, as heartbeat.json writes times (None stays None)."""
    return t.astimezone(dt.UTC).isoformat(timespec="seconds") if t else None


def read_heartbeat(output_dir: Location) -> SchedulerHeartbeat | None:
    """The heartbeat; None when it is missing or damaged (see load_heartbeat)."""
    beat, _ = load_heartbeat(output_dir)
    return beat


def load_heartbeat(output_dir: Location) -> tuple[SchedulerHeartbeat | None, str | None]:
    """The heartbeat and why it cannot be used: (None, reason) when it is missing, unreadable
    or damaged, (heartbeat, None) otherwise. The reason is a sentence that ends with the fix."""
    path = output_dir / HEARTBEAT
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None, f"no heartbeat in {path}; the scheduler writes it when it runs"
    except OSError as exc:
        reason = exc.strerror or " ".join(str(exc).split())
        return None, f"the heartbeat {path} cannot be read ({reason})"
    try:
        return parse_heartbeat(text, str(path)), None
    except DocumentError as exc:
        return None, str(exc)


def last_success(output_dir: Location) -> dt.datetime | None:
    """When the last successful scheduled run started (heartbeat), or the newest run in runs/."""
    times = []
    beat = read_heartbeat(output_dir)
    if beat is not None and beat.last_success_at:
        times.append(dt.datetime.fromisoformat(beat.last_success_at))
    runs = output_dir / "runs"
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


def health(settings: Settings) -> tuple[bool, str]:
    """Whether the scheduler runs and its heartbeat is fresh (for container health checks)."""
    beat, problem = load_heartbeat(settings.output_dir)
    if beat is None:
        return False, f"unhealthy: {problem}"
    if beat.stopped_at:
        return False, (
            f"unhealthy: the scheduler (pid {beat.pid}) stopped at {beat.stopped_at}; "
            "start it again"
        )
    if (beat.last_failed_starts or 0) >= FAILED_STARTS_UNHEALTHY:
        return False, (
            f"unhealthy: the last {beat.last_failed_starts} scheduled runs did not start "
            f"(last: {beat.last_run_status or 'missed'}); read the scheduler's log and fix "
            "the cause (settings, model, a lock held, the output location, a misfire grace "
            "too short)"
        )
    age = (utc_now() - dt.datetime.fromisoformat(beat.updated_at)).total_seconds()
    limit = max(3 * settings.heartbeat_seconds, 10.0)
    if age > limit:
        return False, (
            f"unhealthy: the heartbeat is {age:.0f} s old (limit {limit:.0f} s), so "
            "the scheduler is stuck or gone"
        )
    return True, (
        f"healthy: heartbeat {age:.0f} s old, last run {beat.last_run_at} "
        f"({beat.last_run_status}), next run {beat.next_run_at}"
    )


class Heartbeat:
    """What the running scheduler says about itself: the last run's outcome, the next fire,
    whether it stopped; written to heartbeat.json and batch_scheduler.prom."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.output_dir: Location = settings.output_dir
        beat, problem = load_heartbeat(self.output_dir)
        if beat is None and (self.output_dir / HEARTBEAT).exists():
            log.warning("%s — ignoring it: this scheduler rewrites it now", problem)
        # The last run's outcome survives a restart (every last_* key, known or not); the rest is
        # rewritten.
        kept = beat.model_dump(exclude_unset=True) if beat is not None else {}
        self.state: dict[str, Any] = {k: v for k, v in kept.items() if k.startswith("last_")}
        self.state_lock = threading.Lock()  # the fire and the heartbeat run on different threads
        self.stopped_at: dt.datetime | None = None
        self.metrics_lock = threading.Lock()
        self.down = False  # batch_scheduler.prom says up 0: written once, at a clean stop

    def update(self, **values: Any) -> None:
        with self.state_lock:
            self.state.update(values)

    def write(self, next_fire: dt.datetime | None) -> None:
        """Rewrite the heartbeat file (last and next run), atomically, and the metrics."""
        with self.state_lock:
            state = dict(self.state)
        data: dict[str, Any] = {
            "pid": os.getpid(),
            "updated_at": iso(utc_now()),
            "schedule": self.settings.schedule,
            "timezone": self.settings.timezone,
            "next_run_at": iso(next_fire),
            **state,
        }
        if self.stopped_at is not None:  # --health says unhealthy from the stop on
            data.update(stopped_at=iso(self.stopped_at), next_run_at=None)
        text = dump(SchedulerHeartbeat.model_validate(data))
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            fs.write_atomic(self.output_dir / HEARTBEAT, text)
        except OSError as exc:
            log.warning("cannot write the heartbeat: %s", exc)
        self.write_metrics(up=self.stopped_at is None, next_fire=next_fire)

    def write_metrics(self, up: bool, next_fire: dt.datetime | None) -> None:
        """batch_scheduler.prom: up, heartbeat time and next fire (a failure only warns)."""
        from batch.ops.metrics import write_scheduler_metrics

        # A heartbeat still in flight at shutdown must not write up 1 over the final up 0.
        with self.metrics_lock:
            if self.down:
                return
            self.down = not up
            try:
                write_scheduler_metrics(self.settings.metrics_folder, up, utc_now(), next_fire)
            except OSError as exc:
                log.warning("cannot write the scheduler metrics: %s", exc)


def record_dead_run(settings: Settings, beat: Heartbeat) -> None:
    """A run the heartbeat still calls running died with the scheduler that started it (killed;
    its scorer dies with it, see batch.schedule.runner): mark it failed in the heartbeat, and in
    runs.jsonl, the score metrics and index.html as the scorer would have. Call with the
    scheduler lock held (no other scheduler can be running it)."""
    if beat.state.get("last_run_status") != "running":
        return
    from batch.ops.monitoring import after_score

    at = beat.state.get("last_run_at")
    started = dt.datetime.fromisoformat(at) if at else utc_now()
    error = (
        f"the scheduler was stopped during the run started at {iso(started)} (killed?) and the "
        "run with it; the next scheduled run scores whatever it did not publish"
    )
    summary = {"status": "failed", "exit_code": DEAD_RUN_CODE, "error": error}
    log.error("%s", error)
    beat.update(
        last_run_status="failed: the scheduler died during the run",
        last_run_exit_code=DEAD_RUN_CODE,
        last_run_summary=summary,
    )
    after_score(settings, summary, DEAD_RUN_CODE, started)
