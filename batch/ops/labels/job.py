"""`python -m jobs.labels`: join true prices to every past run that carries the key.

Steps: read the label files -> for each succeeded run whose predictions have the key columns,
join and judge (nothing written yet: a label in the wrong unit refuses the whole join) -> under
the output folder's lock, write each result that changed -> metrics and index.html.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from batch.core import interrupts
from batch.core.documents import LabelsResult
from batch.core.errors import InputError
from batch.ops import history
from batch.ops.labels import join, results, sources
from batch.settings import Settings
from batch.storage import rundir

log = logging.getLogger(__name__)

DEFAULT_KEY = ["source_file", "source_row"]


def run(
    settings: Settings, entries: list[str], keys: list[str] | None, column: str | None
) -> dict[str, Any]:
    """Join, write what changed, and return the JSON summary."""
    keys = keys or DEFAULT_KEY
    wanted = column or settings.target_column
    labels = sources.read_labels(entries, keys, wanted)
    joined_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    found, without_key = _results(settings, labels, keys, joined_at)
    outcomes = _write(settings, found)
    if any(o != "unchanged" for o in outcomes.values()):
        _after(settings)
    if not found:
        log.warning(
            "no label matched a prediction of any succeeded run in %s; nothing was written",
            settings.output_dir,
        )
    runs = [_run_summary(r, outcomes[r.run_id]) for r in found]
    for item in runs:
        if item["outcome"] == "replaced":
            log.info("labels for run %s replaced its earlier result", item["run_id"])
    return {
        "status": "succeeded",
        "label_files": [f.model_dump() for f in labels.files],
        "key": keys,
        "label_column": labels.column,
        "runs": runs,
        "written": sum(o != "unchanged" for o in outcomes.values()),
        "replaced": sorted(k for k, o in outcomes.items() if o == "replaced"),
        "unchanged": sum(o == "unchanged" for o in outcomes.values()),
        "runs_without_key": without_key,
    }


def _results(
    settings: Settings, labels: sources.Labels, keys: list[str], joined_at: str
) -> tuple[list[LabelsResult], int]:
    """(a result per run with a labelled row, how many succeeded runs lack the key columns)."""
    root = settings.output_dir
    runs = [
        r
        for r in history.collect(root)
        if r.report is not None and r.report.status == "succeeded" and r.run_dir
    ]
    found, without_key = [], 0
    for entry in sorted(runs, key=lambda r: r.run_id or ""):
        assert entry.report is not None and entry.run_dir is not None
        folder = root / entry.run_dir
        if not set(keys) <= set(sources.prediction_columns(folder)):
            without_key += 1
            continue
        preds = sources.read_predictions(folder, entry.report, keys)
        matched = join.join(labels.frame, preds)
        if len(matched.rows):
            found.append(_result(entry.report, labels, keys, matched, joined_at))
    if runs and without_key == len(runs):
        raise InputError(
            f"no run in {root} has the key column(s) {', '.join(map(repr, keys))} in its "
            "predictions; pass --key with columns the scored inputs had (default: "
            "source_file and source_row)"
        )
    return found, without_key


def _result(
    report: Any, labels: sources.Labels, keys: list[str], matched: join.Joined, joined_at: str
) -> LabelsResult:
    rows = matched.rows
    unit = join.check_unit(rows, labels.column, report.run_id)
    level = report.interval.level if report.interval is not None else None
    return LabelsResult(
        run_id=report.run_id,
        model_version=report.model_version,
        joined_at=joined_at,
        label_files=labels.files,
        key=keys,
        label_column=labels.column,
        unit=unit,
        rows_scored=matched.rows_scored,
        rows_labelled=len(rows),
        predictions_unlabelled=matched.predictions_unlabelled,
        labels_unmatched=matched.labels_unmatched,
        duplicate_keys=matched.duplicates,
        realized=join.realized(rows, level),
        estimated=join.estimated(rows, report),
        deciles=join.deciles(rows, report),
        **_groups(rows, report),
        **_challenger(rows, report),
    )


def _groups(rows: Any, report: Any) -> dict[str, Any]:
    """The groups field, set only for a band calibrated per group (else absent, as before)."""
    found = join.groups(rows, report)
    return {} if found is None else {"groups": found}


def _challenger(rows: Any, report: Any) -> dict[str, Any]:
    """The challenger field, set only for a run scored with --challenger (else absent)."""
    found = join.challenger(rows, report)
    return {} if found is None else {"challenger": found}


def _write(settings: Settings, found: list[LabelsResult]) -> dict[str, results.Outcome]:
    """Each result that changed, under the output folder's lock (a scoring run holding it:
    exit 6). When none changed, nothing is touched, not even the lock file."""
    root = settings.output_dir
    outcomes: dict[str, results.Outcome] = {r.run_id: "unchanged" for r in found}
    if all(results.is_current(root, r) for r in found):
        return outcomes
    out = rundir.OutputDir(root)
    with rundir.writing(root, "no labels result was written"):
        out.lock(rundir.LABELS_LOCK_ID)
        try:
            interrupts.hold()  # a stop signal now waits: each result lands with its history line
            outcomes.update({r.run_id: results.write(root, r) for r in found})
        finally:
            out.unlock()
    return outcomes


def _after(settings: Settings) -> None:
    """The metrics textfile and index.html; a failure is a warning, never the join's outcome."""
    from batch.ops import history_page

    steps = (
        (
            "write the labels metrics",
            lambda: results.write_metrics(
                settings.metrics_folder, results.realized_by_run(settings.output_dir)
            ),
        ),
        ("rebuild the run history page", lambda: history_page.write_index(settings.output_dir)),
    )
    for what, step in steps:
        try:
            step()
        except Exception as exc:
            log.warning("could not %s: %s", what, exc, exc_info=not isinstance(exc, OSError))


def _run_summary(result: LabelsResult, outcome: str) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "outcome": outcome,
        "rows_labelled": result.rows_labelled,
        "realized_mae": result.realized.mae,
        "coverage": result.realized.coverage,
        "estimated_mae": result.estimated.mae,
    }
