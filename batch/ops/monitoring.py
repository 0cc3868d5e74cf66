"""After every scoring command: its outcome line, the Prometheus textfile and the history page."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from batch.core.documents import DocumentError, RunLine, RunReport, parse_report
from batch.ops.metrics import outcome_from_run, relative_run_dir
from batch.settings import Settings
from batch.storage.location import Location

log = logging.getLogger(__name__)


def _report_of(output_dir: Location, summary: dict[str, Any]) -> RunReport | None:
    """The report.json of the run the summary names (None: no folder, or no readable report)."""
    run_dir = relative_run_dir(summary["run_dir"]) if summary.get("run_dir") else None
    if run_dir is None:
        return None
    path = output_dir / run_dir / "report.json"
    try:
        return parse_report(path.read_bytes(), str(path))
    except OSError:
        return None
    except DocumentError as exc:
        log.warning("%s", exc)
        return None


def after_score(
    settings: Settings,
    summary: dict[str, Any],
    exit_code: int,
    started: dt.datetime,
    finished: dt.datetime | None = None,
) -> RunLine:
    """Record one scoring command (success or failure): runs.jsonl, batch_score.prom, index.html.

    `summary` is the scorer's JSON summary (on failure: status, exit_code, error and whatever
    the error carried). Each step that cannot write (a read-only or full output location) logs
    a warning and never changes the run's exit code.
    """
    from batch.ops import history, history_page, metrics

    finished = finished or dt.datetime.now(dt.UTC)
    report = _report_of(settings.output_dir, summary)
    outcome = outcome_from_run(summary, report, exit_code, started, finished, settings.output_dir)
    steps = (
        ("append to the outcome log", lambda: history.append_outcome(settings.output_dir, outcome)),
        (
            "write the Prometheus metrics",
            lambda: metrics.write_score_metrics(settings.metrics_folder, outcome),
        ),
        ("rebuild the run history page", lambda: history_page.write_index(settings.output_dir)),
    )
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # monitoring must never turn a run's outcome into another one
            log.warning("could not %s: %s", what, exc, exc_info=not isinstance(exc, OSError))
    return outcome
