"""After every scoring command: its outcome line, the Prometheus textfile and the history page."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from batch.ops.metrics import ScoreOutcome, outcome_from_run
from batch.settings import Settings
from batch.storage import fs

log = logging.getLogger(__name__)


def _report_of(summary: dict[str, Any]) -> dict[str, Any] | None:
    run_dir = summary.get("run_dir")
    if not run_dir:
        return None
    try:
        value = json.loads((fs.path(run_dir) / "report.json").read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def after_score(
    settings: Settings,
    summary: dict[str, Any],
    exit_code: int,
    started: dt.datetime,
    finished: dt.datetime | None = None,
) -> ScoreOutcome:
    """Record one scoring command (success or failure): runs.jsonl, batch_score.prom, index.html.

    `summary` is the scorer's JSON summary (on failure: status, exit_code, error and whatever
    the error carried). Each step that cannot write (a read-only or full output location) logs
    a warning and never changes the run's exit code.
    """
    from batch.ops import history, metrics

    finished = finished or dt.datetime.now(dt.UTC)
    outcome = outcome_from_run(
        summary, _report_of(summary), exit_code, started, finished, settings.output_dir
    )
    steps = (
        ("append to the outcome log", lambda: history.append_outcome(settings.output_dir, outcome)),
        (
            "write the Prometheus metrics",
            lambda: metrics.write_score_metrics(settings.metrics_folder, outcome),
        ),
        ("rebuild the run history page", lambda: history.write_index(settings.output_dir)),
    )
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # monitoring must never turn a run's outcome into another one
            log.warning("could not %s: %s", what, exc, exc_info=not isinstance(exc, OSError))
    return outcome
