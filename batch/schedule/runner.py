"""One scheduled scoring run: `python -m jobs.score --new-only` in a subprocess, then retention.

The scorer runs in its own process, so the scheduler never imports TensorFlow and a failing run
cannot take it down; the scheduler reads only the run's exit code and JSON summary line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from batch.core import dates
from batch.core.errors import EXIT_CODES, BatchError
from batch.settings import SCORE_FIELDS, Settings, flag_name

log = logging.getLogger(__name__)

# Everything a scoring run takes, except what the scheduler sets itself (inputs, --new-only,
# the fire's --nominal-time and --logical-date).
SET_PER_FIRE = ("input", "new_only", "nominal_time", "logical_date")
PASSED_ON = [f for f in SCORE_FIELDS if f not in SET_PER_FIRE]


def scorer_command(
    settings: Settings, nominal: dt.datetime | None = None, now: dt.datetime | None = None
) -> list[str]:
    """The scorer's command line carrying this scheduler's resolved settings, the fire's
    scheduled time (the lineage events' nominalTime) when there is one, and its logical date:
    the day of the scheduled time (else of `now`) in the schedule's time zone, which fills a
    {date} in --input."""
    cmd = [sys.executable, "-m", "jobs.score", "--new-only"]
    for entry in settings.input:
        cmd += ["--input", entry]
    if nominal is not None:
        cmd += ["--nominal-time", nominal.isoformat()]
    if settings.logical_date is not None:  # pinned by the operator: every fire stands for it
        cmd += ["--logical-date", settings.logical_date.isoformat()]
    else:
        moment = nominal or now or dt.datetime.now(dt.UTC)
        cmd += ["--logical-date", dates.day_of(moment, settings.timezone).isoformat()]
    for name in PASSED_ON:
        value = getattr(settings, name)
        if value is not None:
            cmd += [flag_name(name), str(value)]
    return cmd


def exit_reason(code: int) -> str:
    """What a scoring run's exit code means (EXIT_CODES), or the signal that killed it."""
    return EXIT_CODES.get(code, f"killed by signal {-code}" if code < 0 else "unknown")


class ScorerProcess:
    """The scorer as a subprocess, one run at a time; abort() ends it from another thread."""

    def __init__(self) -> None:
        self.child: subprocess.Popen[str] | None = None

    def run(
        self, settings: Settings, nominal: dt.datetime | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Run the scorer to its end: its exit code and JSON summary ({} when it printed none)."""
        cmd = scorer_command(settings, nominal)
        log.info("scheduled run starting: %s", " ".join(cmd[1:]))
        try:
            # Its own session: a Ctrl-C at the scheduler's terminal does not reach the run.
            self.child = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
                preexec_fn=dies_with_parent(),
            )
            out, _ = self.child.communicate()
            code = self.child.returncode
        except OSError as exc:
            out, code = "", 1
            log.error("could not start the scorer: %s", exc)
        finally:
            self.child = None
        return code, last_json(out)

    def abort(self) -> None:
        """Terminate the run in progress, if any (the scorer publishes nothing partial)."""
        child = self.child
        if child is not None:
            log.warning(
                "aborting the run in progress (pid %s); it leaves no partial output", child.pid
            )
            child.terminate()


def dies_with_parent() -> Callable[[], None] | None:
    """What the scorer's child process runs before exec so that it dies with the scheduler
    (Linux's PR_SET_PDEATHSIG): a scheduler killed mid-run never leaves an orphaned scorer that
    publishes behind the restarted one's back. None where the call does not exist.

    libc is loaded here, in the parent: the child only makes the one system call.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    set_death_signal = 1  # PR_SET_PDEATHSIG

    def child() -> None:
        prctl(set_death_signal, int(signal.SIGKILL))

    return child


def last_json(out: str | None) -> dict[str, Any]:
    """The last line of `out` that is a JSON object: the scorer's summary line."""
    for line in reversed((out or "").strip().splitlines()):
        try:
            value = json.loads(line)
            if isinstance(value, dict):
                return value
        except ValueError:
            continue
    return {}


def apply_retention(settings: Settings) -> None:
    """Prune old runs after a fire when --retention / --retention-days ask for it."""
    keep, days = settings.retention, settings.retention_days
    if keep is None and days is None:
        return
    from batch.ops.retention import prune

    try:
        plan = prune(settings.output_dir, keep=keep, older_than_days=days)
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
            ", ".join(str(r.run_dir) for r in plan.folders),
            len(plan.log_lines),
        )
