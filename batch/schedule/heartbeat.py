"""The scheduler's heartbeat: heartbeat.json and batch_scheduler.prom, written and read back.

The running scheduler rewrites both on a timer and around each fire; --health, the catch-up at
start and a restarted scheduler read heartbeat.json back.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from typing import Any, overload

from batch.core.jsontext import dumps
from batch.settings import Settings
from batch.storage import fs
from batch.storage.atomic import write_atomic

log = logging.getLogger(__name__)

HEARTBEAT = "heartbeat.json"
TIME_KEYS = ("updated_at", "last_success_at", "last_run_at", "stopped_at")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@overload
def iso(t: dt.datetime) -> str: ...
@overload
def iso(t: dt.datetime | None) -> str | None: ...
def iso(t: dt.datetime | None) -> str | None:
    """`t` in UTC, to the second, as heartbeat.json writes times (None stays None)."""
    return t.astimezone(dt.UTC).isoformat(timespec="seconds") if t else None


def read_heartbeat(output_dir: fs.Location) -> dict[str, Any]:
    """The heartbeat file's content; {} when it is missing or damaged (see load_heartbeat)."""
    data, _ = load_heartbeat(output_dir)
    return data


def load_heartbeat(output_dir: fs.Location) -> tuple[dict[str, Any], str | None]:
    """The heartbeat's content and why it cannot be used: ({}, reason) when it is missing or
    damaged, (content, None) otherwise."""
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
    for key in TIME_KEYS:
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


def last_success(output_dir: fs.Location) -> dt.datetime | None:
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


def health(settings: Settings) -> tuple[bool, str]:
    """Whether the scheduler runs and its heartbeat is fresh (for container health checks)."""
    beat, problem = load_heartbeat(settings.output_dir)
    if problem:
        return False, f"unhealthy: {problem}; the scheduler rewrites it when it runs"
    if beat.get("stopped_at"):
        return False, (
            f"unhealthy: the scheduler (pid {beat.get('pid', '?')}) stopped at "
            f"{beat['stopped_at']}; start it again"
        )
    if not beat.get("updated_at"):
        return False, f"unhealthy: no heartbeat time in {fs.path(settings.output_dir) / HEARTBEAT}"
    age = (utc_now() - dt.datetime.fromisoformat(beat["updated_at"])).total_seconds()
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


class Heartbeat:
    """What the running scheduler says about itself: the last run's outcome, the next fire,
    whether it stopped; written to heartbeat.json and batch_scheduler.prom."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.output_dir = fs.path(settings.output_dir)
        beat, problem = load_heartbeat(self.output_dir)
        if problem and (self.output_dir / HEARTBEAT).exists():
            log.warning("%s; ignoring it (it is rewritten now)", problem)
        # The last run's outcome survives a restart; the rest is rewritten.
        self.state: dict[str, Any] = {k: v for k, v in beat.items() if k.startswith("last_")}
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
        data = {
            "pid": os.getpid(),
            "updated_at": iso(utc_now()),
            "schedule": self.settings.schedule,
            "timezone": self.settings.timezone,
            "next_run_at": iso(next_fire),
            **state,
        }
        if self.stopped_at is not None:  # --health says unhealthy from the stop on
            data.update(stopped_at=iso(self.stopped_at), next_run_at=None)
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(self.output_dir / HEARTBEAT, dumps(data, indent=2) + "\n")
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
