"""`jobs.score --backfill FROM..TO`: one ordinary scoring run per day of the range, in order.

Each day's run fills `{date}` in --input with the day (YYYY-MM-DD), records the day as its
logical date and is an ordinary run in every other way (its own run_id, folder, runs.jsonl line,
lineage events with the day's midnight as nominalTime). Idempotent and resumable:

- a day a published run scored already is skipped (checked again under the output lock, so two
  backfills over one range never score a day twice); with --force it is scored again and the
  earlier runs stay, marked superseded by the new one;
- a day with no input (its filled --input names no existing file) is recorded in runs.jsonl
  as `no_input` and skipped; a later backfill looks again, so input that arrives late is scored;
- the first day whose run fails stops the backfill with that run's exit code; the days after
  it are not attempted. Running the same command again (after a fix, or after a kill) scores
  only the days still missing, and once none is missing it scores nothing and exits 0.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from batch.core import dates
from batch.core.errors import BatchError, ConfigError
from batch.io.discovery import names_files
from batch.ops import days
from batch.ops.history import days_done, read_log
from batch.scoring import score
from batch.settings import Settings, env_name
from batch.storage import fs

log = logging.getLogger(__name__)

NO_INPUT = "no_input"
SKIPPED = (days.ALREADY_SCORED, "nothing_new")  # a day that needed no new run


class BackfillStopped(BatchError):
    """A day's run failed: the backfill stopped there, with that run's exit code."""

    def __init__(self, message: str, exit_code: int, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.summary = summary


def backfill(settings: Settings, range_text: str, force: bool = False) -> dict[str, Any]:
    """Score each day of FROM..TO in order; the backfill's JSON summary (one entry per day).
    Raises ConfigError (exit 2) for a bad range or an --input without {date}, and
    BackfillStopped (the failed run's exit code) at the first day whose run fails."""
    every_day = dates.parse_range(range_text)
    if not dates.has_placeholder(settings.input):
        raise ConfigError(
            f"--backfill needs {dates.PLACEHOLDER} in --input / {env_name('input')} (e.g. "
            f"'inputs/{dates.PLACEHOLDER}/'), or every day would score the same files"
        )
    if settings.logical_date is not None:
        raise ConfigError(
            f"--backfill sets each run's logical date; leave out --logical-date / "
            f"{env_name('logical_date')}"
        )
    done = {} if force else days_done(settings.output_dir)
    recorded = _no_input_days(settings.output_dir)
    entries: list[dict[str, Any]] = []
    for day in every_day:
        entry = _one_day(settings, day, done.get(day), force, day in recorded)
        entries.append(entry)
        if "exit_code" in entry:
            summary = _summary(range_text, every_day, entries, entry["exit_code"])
            raise BackfillStopped(
                f"backfill stopped at {day}: {entry['error']}; "
                f"{summary['not_attempted']} later day(s) not attempted; run the same "
                "command again once fixed: the days done are skipped",
                entry["exit_code"],
                summary,
            )
    summary = _summary(range_text, every_day, entries, 0)
    log.info(
        "backfill %s done: %d day(s) scored, %d skipped (scored before), %d without input",
        range_text,
        summary["scored"],
        summary["skipped"],
        summary["no_input"],
    )
    return summary


def _one_day(
    settings: Settings, day: dt.date, scored_by: list[str] | None, force: bool, recorded: bool
) -> dict[str, Any]:
    """One day: skipped (done, or no input), or scored by one ordinary run; its summary entry
    ('exit_code' and 'error' only when its run failed)."""
    entry: dict[str, Any] = {"logical_date": day.isoformat()}
    if scored_by:
        log.info("%s: scored already by %s; skipped", day, scored_by[-1])
        return {**entry, "status": days.ALREADY_SCORED, "run_id": scored_by[-1]}
    dated = settings.model_copy(
        update={"logical_date": day, "nominal_time": dates.start_of(day, settings.timezone)}
    )
    try:
        filled = days.for_day(dated)
        if not any(names_files(entry) for entry in filled.input):
            _record_no_input(dated, filled.input, again=recorded)
            return {**entry, "status": NO_INPUT, "run_id": None}
        log.info("%s: scoring %s", day, ", ".join(filled.input))
        result = score(dated, "replace" if force else "skip")
    except BatchError as exc:
        run = getattr(exc, "summary", {}) or {}
        return {
            **entry,
            "status": run.get("status", "failed"),
            "run_id": run.get("run_id"),
            "exit_code": exc.exit_code,
            "error": str(exc),
        }
    entry.update(status=result["status"], run_id=result.get("run_id"))
    if result.get("scored_by"):
        entry["run_id"] = result["scored_by"][-1]
    entry.update(rows_scored=result["rows_scored"], rows_rejected=result["rows_rejected"])
    if result.get("supersedes"):
        entry["supersedes"] = result["supersedes"]
    return entry


def _no_input_days(output_dir: fs.Location) -> set[dt.date]:
    """The days whose newest runs.jsonl line says no_input (a rerun does not repeat it)."""
    newest: dict[str, str] = {}
    for entry in read_log(output_dir):
        if entry.line is not None and entry.line.logical_date:
            newest[entry.line.logical_date] = entry.line.status
    return {dt.date.fromisoformat(d) for d, status in newest.items() if status == NO_INPUT}


def _record_no_input(settings: Settings, entries: list[str], again: bool) -> None:
    """A day without input: one runs.jsonl line (status no_input, exit 0), and the log; not
    repeated when the day's newest line says so already."""
    from batch.ops.monitoring import after_score

    where = ", ".join(entries)
    log.warning("%s: no input at %s; skipped", settings.logical_date, where)
    if again:
        return
    now = dt.datetime.now(dt.UTC)
    summary = {
        "status": NO_INPUT,
        "run_id": None,
        "logical_date": days.day_text(settings),
        "error": f"no input at {where}",
    }
    after_score(settings, summary, 0, now, now)


def _summary(
    range_text: str, every_day: list[dt.date], entries: list[dict[str, Any]], code: int
) -> dict[str, Any]:
    statuses = [e["status"] for e in entries]
    return {
        "status": "succeeded" if code == 0 else "failed",
        "exit_code": code,
        "backfill": range_text,
        "days": len(every_day),
        "scored": statuses.count("succeeded"),
        "skipped": sum(1 for s in statuses if s in SKIPPED),
        "no_input": statuses.count(NO_INPUT),
        "failed": sum(1 for e in entries if "exit_code" in e),
        "not_attempted": len(every_day) - len(entries),
        "rows_scored": sum(int(e.get("rows_scored") or 0) for e in entries),
        "rows_rejected": sum(int(e.get("rows_rejected") or 0) for e in entries),
        "runs": entries,
        "warnings": [],
    }
