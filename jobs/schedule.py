"""python -m jobs.schedule: run the scorer (--new-only) on a cron schedule, with a heartbeat."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from batch.core.errors import BatchError, exit_codes_help
from batch.settings import SCHEDULE_FIELDS, Settings
from jobs import _cli
from jobs.score import FIELDS as SCORE_FIELDS

FIELDS = SCORE_FIELDS + SCHEDULE_FIELDS
# The scheduler sets these for each run itself (--nominal-time: the fire's scheduled time;
# --logical-date, the fire's day, is its own flag only to pin one day for every fire).
FIELDS = [f for f in FIELDS if f not in ("new_only", "nominal_time")]


def parser() -> argparse.ArgumentParser:
    p = _cli.JobParser(
        prog="python -m jobs.schedule",
        description="Long-running scheduler: runs 'python -m jobs.score --new-only' on the cron "
        "schedule (APScheduler). At start it runs once right away when a scheduled run "
        "was missed (or none ever ran). SIGTERM/SIGINT: no new runs, the current one "
        "finishes, exit 0. Writes <output-dir>/heartbeat.json for health checks; a second "
        "scheduler on the same output directory exits 6 (output/.scheduler.lock). "
        "--health exits 0 healthy, 1 unhealthy (stale, missing, damaged or stopped, or its "
        "last three fires did not start).",
        epilog=exit_codes_help((0, 1, 2, 6, 7)) + " Each scoring run's own exit code is logged "
        "with its meaning.",
    )
    p.add_argument("--run-now", action="store_true", help="also run once right at start")
    p.add_argument(
        "--health",
        action="store_true",
        help="check the heartbeat file and exit: 0 healthy, 1 stale or missing",
    )
    _cli.add_settings_flags(p, FIELDS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    if args.health:
        _cli.warn_unknown_settings("jobs.schedule")
        try:
            settings = _cli.settings_from_args(args, FIELDS)
        except BatchError as exc:
            _cli.error_sentence("jobs.schedule", str(exc))
            return exc.exit_code
        from batch.schedule.heartbeat import health

        ok, message = health(settings)
        print(message, file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1

    def job(settings: Settings) -> dict[str, Any]:
        from batch.schedule.scheduler import NightlyScorer

        return {"exit_code": NightlyScorer(settings).serve(run_now=args.run_now)}

    return _cli.run("jobs.schedule", FIELDS, args, job, summary_line=False)


if __name__ == "__main__":
    sys.exit(main())
