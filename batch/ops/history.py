"""Run history: the outcome log (runs.jsonl) and every run of an output folder.

runs.jsonl lines are RunLine documents, written with `dump` and read with `parse_run_line`;
report.json files are read with `parse_report`. A damaged line or report never stops the
history: it is logged once (one sentence naming the file and field) and shown as damaged.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, replace
from typing import Any

from batch.core.documents import (
    DocumentError,
    RunLine,
    RunReport,
    dump,
    parse_report,
    parse_run_line,
)
from batch.ops.metrics import outcome_from_run, verdict_fields
from batch.storage import fs
from batch.storage.location import Location

log = logging.getLogger(__name__)

RUNS_LOG = "runs.jsonl"
REPORT = "report.json"
FOLDERS = ("runs", "failed")
DAMAGED = "damaged"  # the status shown for a run whose line or report cannot be read
NEVER = dt.datetime.min.replace(tzinfo=dt.UTC)


# -- the outcome log ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogEntry:
    """One line of runs.jsonl: its text as written and, unless damaged, its RunLine."""

    number: int  # 1-based
    text: str
    line: RunLine | None
    problem: str | None = None  # why it could not be read


def append_outcome(output_dir: Location, outcome: RunLine) -> None:
    """Append one line to <output>/runs.jsonl (one write of one line: concurrent runs cannot
    mix)."""
    fs.ensure_dir(output_dir)
    fs.append_line(output_dir / RUNS_LOG, dump(outcome))


def read_log(output_dir: Location) -> list[LogEntry]:
    """Every line of runs.jsonl in the order written; a damaged one is kept (line None) and
    logged once. A missing log is empty; any other read error is raised: an unreadable log
    must never pass for an empty one (a prune would then rewrite it empty)."""
    path = output_dir / RUNS_LOG
    try:
        # Bytes that are not UTF-8 (a torn write, garbage) damage their own line only; they
        # are kept as they were (surrogateescape) so that a rewrite never changes them.
        text = path.read_bytes().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return []
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            entries.append(LogEntry(number, raw, parse_run_line(raw, str(path), number)))
        except DocumentError as exc:
            log.warning("%s", exc)
            entries.append(LogEntry(number, raw, None, str(exc)))
    return entries


def rewrite_log(output_dir: Location, entries: list[LogEntry]) -> None:
    """Replace runs.jsonl with `entries` atomically, each line as it was written (prune drops
    the lines of removed runs; a damaged line stays as it is)."""
    text = "".join(e.text + "\n" for e in entries)
    fs.write_atomic(output_dir / RUNS_LOG, text.encode("utf-8", "surrogateescape"))


# -- every run ----------------------------------------------------------------------------------


def parse_time(iso: str | None) -> dt.datetime:
    """An ISO-8601 time as an aware datetime (NEVER when absent or not a time)."""
    try:
        t = dt.datetime.fromisoformat(str(iso))
    except ValueError:
        return NEVER
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _run_id_time(run_id: str | None) -> dt.datetime:
    try:
        return dt.datetime.strptime(str(run_id)[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return NEVER


@dataclass(frozen=True)
class RunEntry:
    """One run of an output folder: a run folder (with its report) and/or its outcome line."""

    run_id: str | None
    run_dir: str | None  # runs/<id> or failed/<id>; None: no folder
    outcome: RunLine | None  # None: its line (or its report, when it has no line) is damaged
    report: RunReport | None = None
    log_number: int | None = None  # its line in runs.jsonl, when it has one
    problem: str | None = None  # one sentence: what is damaged
    superseded_by: str | None = None  # the later run of the same day that re-scored it (--force)

    @property
    def started(self) -> dt.datetime:
        if self.outcome is not None:
            return parse_time(self.outcome.started_at)
        return _run_id_time(self.run_id)

    def view(self) -> dict[str, Any]:
        """The run as `jobs.runs list --json`, the table and the history page show it: the
        fields of runs.jsonl, and max_reject_fraction for a run with a folder."""
        fields: dict[str, Any] = dict.fromkeys(
            f for f in RunLine.model_fields if f != "schema_version"
        )
        if self.outcome is not None:
            fields.update(self.outcome.model_dump(mode="json", exclude={"schema_version"}))
        fields.update(run_id=self.run_id, run_dir=self.run_dir, superseded_by=self.superseded_by)
        if self.problem is not None:
            fields.update(status=DAMAGED, error=self.problem)
        if self.run_dir:
            fields["max_reject_fraction"] = self.report.max_reject_fraction if self.report else None
        return fields


def collect(output_dir: Location) -> list[RunEntry]:
    """Every run of the output folder, newest first.

    A run folder under runs/ or failed/ counts with its report.json; an outcome line of
    runs.jsonl adds its exit code, error and duration to the folder of the same run_id, and a
    line without a folder (a run that stopped before writing a report, or a --new-only run
    that found nothing new) is a run of its own. A line whose folder was removed is dropped.
    A damaged line or report is a run of status "damaged".
    """
    logged: dict[str, LogEntry] = {}
    runs: list[RunEntry] = []
    for entry in read_log(output_dir):
        if entry.line is not None and entry.line.run_dir:
            logged[str(entry.line.run_id)] = entry
        else:
            runs.append(_loose(entry))
    for kind in FOLDERS:
        base = output_dir / kind
        if not base.is_dir():
            continue
        for folder in base.iterdir():
            run = _folder_run(kind, folder, logged.get(folder.name)) if folder.is_dir() else None
            if run is not None:
                runs.append(run)
    runs.sort(key=lambda r: (r.started, r.run_id or ""), reverse=True)
    return _mark_superseded(runs)


def _mark_superseded(runs: list[RunEntry]) -> list[RunEntry]:
    """Each run a later one re-scored (its `supersedes`) marked with that later run's id."""
    by: dict[str, str] = {}
    for run in reversed(runs):  # oldest first: the newest re-score has the last word
        for old in run.outcome.supersedes if run.outcome and run.run_id else ():
            by[old] = str(run.run_id)
    return [replace(r, superseded_by=by[r.run_id]) if r.run_id in by else r for r in runs]


def days_done(output_dir: Location) -> dict[dt.date, list[str]]:
    """Each logical date a published run scored, with those runs' ids, oldest first: from the
    lines of runs.jsonl (exit 0, a folder under runs/) and from the ledger, which outlives
    prune (a day whose runs were pruned stays done). Two small files, whatever the number of
    run folders: a backfill asks once per day."""
    from batch.ops import ledger

    days: dict[dt.date, list[str]] = {}
    for entry in read_log(output_dir):
        line = entry.line
        if line is None or not line.logical_date or not line.run_id:
            continue
        if line.status == "succeeded" and (line.run_dir or "").startswith("runs/"):
            days.setdefault(dt.date.fromisoformat(line.logical_date), []).append(line.run_id)
    for scored in ledger.read(output_dir):
        day = dt.date.fromisoformat(scored.logical_date) if scored.logical_date else None
        if day is not None and scored.run_id not in days.get(day, []):
            days.setdefault(day, []).append(scored.run_id)
    return days


def _loose(entry: LogEntry) -> RunEntry:
    """A line without a folder (or a damaged line: nothing is known of its run)."""
    line = entry.line
    return RunEntry(
        run_id=line.run_id if line else None,
        run_dir=None,
        outcome=line,
        log_number=entry.number,
        problem=entry.problem,
    )


def _folder_run(kind: str, folder: Location, logged: LogEntry | None) -> RunEntry | None:
    """The run of one folder (None: it has no report.json, so it is no run)."""
    path = folder / REPORT
    try:
        data = path.read_bytes()
    except OSError:
        return None
    run_dir, number = f"{kind}/{folder.name}", (logged.number if logged else None)
    line = logged.line if logged else None
    try:
        report = parse_report(data, str(path))
    except DocumentError as exc:
        log.warning("%s", exc)
        return RunEntry(folder.name, run_dir, line, None, number, str(exc))
    if line is None:
        # A run from before the outcome log, or one whose line was lost: its report says all
        # but the exit code, which its folder implies.
        succeeded = kind == "runs"
        summary = {
            "status": "succeeded" if succeeded else "reject_budget_exceeded",
            "run_id": folder.name,
            "run_dir": str(folder),
        }
        started, finished = parse_time(report.started_at), parse_time(report.finished_at)
        line = outcome_from_run(summary, report, 0 if succeeded else 5, started, finished)
    elif line.comparable is None and report.comparability is not None:
        line = line.model_copy(update=verdict_fields(report))  # a line older than the verdict
    return RunEntry(folder.name, run_dir, line, report, number)


def latest_run(output_dir: Location) -> str | None:
    """The run id in LATEST (None when there is none)."""
    try:
        return (output_dir / "LATEST").read_text().strip() or None
    except OSError:
        return None
