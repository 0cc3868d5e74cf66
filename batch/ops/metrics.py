"""Prometheus textfile metrics (node_exporter's textfile collector): the last scoring run and
the scheduler."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from batch.core import comparable
from batch.core.documents import RunLine, RunReport
from batch.core.documents.runs import RunChallenger
from batch.storage import fs
from batch.storage.location import Location

log = logging.getLogger(__name__)

SCORE_FILE = "batch_score.prom"
SCHEDULER_FILE = "batch_scheduler.prom"
LAST_SUCCESS = "batch_score_last_success_timestamp_seconds"
ROW_OUTCOMES = ("read", "scored", "rejected", "out_of_range")


def _iso(t: dt.datetime) -> str:
    # Milliseconds: two runs started within the same second still sort in order.
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds")


def report_coverage(report: RunReport | None) -> float | None:
    """The report's interval coverage (share of true prices inside their band), when it has one."""
    if report is None or report.metrics is None:
        return None
    return report.metrics.interval_coverage


def relative_run_dir(run_dir: object) -> str | None:
    """`runs/<id>` or `failed/<id>`: a run folder named in full (a path or a URL, as in the
    scorer's summary) relative to its output folder."""
    parts = str(run_dir).rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else None


def _run_dir(summary: dict[str, Any], report: RunReport | None, run_id: str | None) -> str | None:
    """The run's folder relative to the output folder (runs/<id> or failed/<id>), if any."""
    if summary.get("run_dir") and run_id:
        return relative_run_dir(summary["run_dir"])
    if report is not None and run_id:
        return f"{'runs' if report.status == 'succeeded' else 'failed'}/{run_id}"
    return None


def outcome_from_run(
    summary: dict[str, Any],
    report: RunReport | None,
    exit_code: int,
    started: dt.datetime,
    finished: dt.datetime,
    output_dir: Location | None = None,
) -> RunLine:
    """Build the outcome from the scorer's JSON summary and its report.json (None: no report).

    `summary` holds at least `status`; a run that got that far adds `run_id`, `rows_scored`,
    `rows_rejected`, `model_version` and `run_dir`. The report, when the run wrote one, is the
    source of everything else (rows read, out of range, drift, coverage, MSE, mean prediction).
    """
    run_id = (report.run_id if report else None) or summary.get("run_id")
    if report is not None:
        scored, rejected, read = report.rows_scored, report.rows_rejected, report.rows_read
        fraction = report.reject_fraction
    else:
        scored = int(summary.get("rows_scored", 0) or 0)
        rejected = int(summary.get("rows_rejected", 0) or 0)
        read = scored + rejected
        fraction = rejected / read if read else 0.0
    run_dir = _run_dir(summary, report, run_id)
    if output_dir is not None and run_dir and not (output_dir / run_dir).is_dir():
        run_dir = None
    return RunLine(
        run_id=run_id,
        status=str(summary.get("status") or (report.status if report else None) or "failed"),
        exit_code=int(exit_code),
        error=summary.get("error"),
        started_at=_iso(started),
        finished_at=_iso(finished),
        duration_seconds=round((finished - started).total_seconds(), 3),
        rows_read=read,
        rows_scored=scored,
        rows_rejected=rejected,
        rows_out_of_range=report.out_of_range.rows if report else 0,
        reject_fraction=float(fraction),
        drift=bool(report and report.drift.differs_markedly),
        interval_coverage=report_coverage(report),
        mse=report.metrics.mse if report and report.metrics else None,
        mean_prediction=report.prediction_summary.mean if report else None,
        model_version=(report.model_version if report else None) or summary.get("model_version"),
        run_dir=run_dir,
        **verdict_fields(report),
        challenger=shadow_summary(report),
        logical_date=(report.logical_date if report else None) or summary.get("logical_date"),
        supersedes=report.supersedes if report else [],
    )


def shadow_summary(report: RunReport | None) -> RunChallenger | None:
    """The RunLine's short copy of the report's challenger section (None: no challenger)."""
    if report is None or report.challenger is None:
        return None
    c = report.challenger
    return RunChallenger(
        version=c.version,
        mean_abs_diff=c.mean_abs_diff,
        mse=c.mse,
        mae=c.mae,
        challenger_mse=c.challenger_mse,
        challenger_mae=c.challenger_mae,
    )


def verdict_fields(report: RunReport | None) -> dict[str, Any]:
    """The RunLine fields of the report's comparable verdict (none without a verdict)."""
    verdict = report.comparability if report is not None else None
    if verdict is None:
        return {}
    kinds = comparable.Verdict(
        verdict.comparable,
        tuple(verdict.reasons),
        tuple(comparable.Flag(w.kind, w.message) for w in verdict.warnings),
    ).counts()
    return {
        "comparable": verdict.comparable,
        "comparable_reasons": list(verdict.reasons),
        "warning_kinds": kinds,
    }


def _timestamp(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def previous_value(path: Location, name: str) -> float | None:
    """A sample's value in an existing textfile (None when the file or the sample is missing)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name:
                    return float(sample.value)
    except ValueError as exc:
        log.warning("cannot parse %s (%s); it is rewritten from scratch", path, exc)
    return None


class _Families:
    """A prometheus_client collector over ready-made gauge families (HELP/TYPE even without
    samples)."""

    def __init__(self, families: Iterable[Any]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Any]:
        return iter(self.families)


def _write(path: Location, families: list[Any]) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    fs.ensure_dir(path.parent)
    # The collector never reads half a file: temp-then-rename on disk, one PUT in a bucket.
    fs.write_atomic(path, generate_latest(registry))


QUALITY = "batch_score_interval_coverage"  # a quality gauge: comparable runs only


def score_families(
    outcome: RunLine, last_success: float | None, quality: float | None = None
) -> list[Any]:
    """The gauge families of batch_score.prom for this outcome (no timestamps on samples).

    `quality` is the interval coverage to show: this run's when it is comparable, else the
    previous file's, so a run that is not comparable never moves it.
    """
    from prometheus_client.core import GaugeMetricFamily as G

    finished = _timestamp(outcome.finished_at)
    rows = G("batch_score_rows", "Rows of the last scoring run, by outcome.", labels=["outcome"])
    for key in ROW_OUTCOMES:
        rows.add_metric([key], float(getattr(outcome, f"rows_{key}")))
    info = G(
        "batch_model_info",
        "The model version the last scoring run used (value 1).",
        labels=["version"],
    )
    if outcome.model_version:
        info.add_metric([str(outcome.model_version)], 1.0)
    return [
        G(
            "batch_score_last_run_timestamp_seconds",
            "Unix time the last scoring run finished (any outcome).",
            value=finished,
        ),
        G(
            LAST_SUCCESS,
            "Unix time the last successful scoring run finished (0: none yet).",
            value=float(last_success or 0.0),
        ),
        G(
            "batch_score_last_exit_code",
            "Exit code of the last scoring run (0 success).",
            value=float(outcome.exit_code),
        ),
        G(
            "batch_score_duration_seconds",
            "Duration of the last scoring run.",
            value=float(outcome.duration_seconds),
        ),
        rows,
        G(
            "batch_score_reject_fraction",
            "Share of rows the last scoring run rejected.",
            value=float(outcome.reject_fraction),
        ),
        G(
            "batch_score_drift",
            "1 when the last run's input differed markedly from the training data, else 0.",
            value=1.0 if outcome.drift else 0.0,
        ),
        *verdict_families(outcome, quality),
        info,
    ]


def verdict_families(outcome: RunLine, quality: float | None) -> list[Any]:
    """The quality gauge (interval coverage), batch_score_warnings (by kind) and
    batch_score_comparable."""
    from prometheus_client.core import GaugeMetricFamily as G

    coverage = G(
        QUALITY,
        "Share of rows with a true price inside their prediction band (last run, or the last "
        "comparable one when it is not comparable; no sample without true prices).",
    )
    if quality is not None:
        coverage.add_metric([], float(quality))
    warnings = G(
        "batch_score_warnings",
        "Warnings of the last scoring run, by kind (units and drift make it not comparable).",
        labels=["kind"],
    )
    for kind in comparable.KINDS:
        warnings.add_metric([kind], float(outcome.warning_kinds.get(kind, 0)))
    is_comparable = G(
        "batch_score_comparable",
        "1 when the last run is comparable (inputs in the training units, drift within "
        "bounds), 0 when not; no sample when it wrote no report.",
    )
    if outcome.comparable is not None:
        is_comparable.add_metric([], 1.0 if outcome.comparable else 0.0)
    return [coverage, warnings, is_comparable]


def write_score_metrics(metrics_dir: Location, outcome: RunLine) -> Location:
    """Write <metrics_dir>/batch_score.prom atomically; the last-success time survives failures,
    and the quality gauge (interval coverage) survives runs that are not comparable.

    A success (exit 0) sets the last-success time to this run's finish; any other exit keeps
    the value of the previous file (0 when there is none).
    """
    path = metrics_dir / SCORE_FILE
    if outcome.exit_code == 0:
        last_success: float | None = _timestamp(outcome.finished_at)
    else:
        last_success = previous_value(path, LAST_SUCCESS)
    quality = (
        previous_value(path, QUALITY) if outcome.comparable is False else outcome.interval_coverage
    )
    _write(path, score_families(outcome, last_success, quality))
    return path


def write_scheduler_metrics(
    metrics_dir: Location, up: bool, heartbeat: dt.datetime, next_fire: dt.datetime | None
) -> Location:
    """Write <metrics_dir>/batch_scheduler.prom atomically: up, heartbeat time, next fire time."""
    from prometheus_client.core import GaugeMetricFamily as G

    nxt = G(
        "batch_scheduler_next_fire_timestamp_seconds",
        "Unix time of the scheduler's next scoring run (no sample when none is planned).",
    )
    if next_fire is not None and up:
        nxt.add_metric([], next_fire.timestamp())
    families = [
        G(
            "batch_scheduler_up",
            "1 while the scheduler runs, 0 after a clean stop.",
            value=1.0 if up else 0.0,
        ),
        G(
            "batch_scheduler_heartbeat_timestamp_seconds",
            "Unix time the scheduler last wrote its heartbeat.",
            value=heartbeat.timestamp(),
        ),
        nxt,
    ]
    path = metrics_dir / SCHEDULER_FILE
    _write(path, families)
    return path
