"""report.json as a RunReport: the run's outcome, inputs, model card, predictions and drift.

Pure: the run's statistics and the model's metadata in, a typed document out. Why a refused run
failed (`budget_failure`, `drift_failure`) is decided here too; the scorer sets it on the report.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np

import batch.ops.report.band as band_rows
from batch.core import comparable
from batch.core.documents import ModelMetadata, RunReport
from batch.core.documents.report import (
    Comparability,
    Domain,
    Drift,
    Failure,
    OutOfRange,
    PredictionSummary,
    RejectedRow,
    ReportInput,
    ReportInterval,
    ReportModel,
    ReportSettings,
    RunMetrics,
    RunWarning,
    SkippedInput,
    TargetCheck,
)
from batch.core.quoting import excerpt
from batch.core.stats import FileStats, RunStats
from batch.ops.labels.estimate import report_estimate
from batch.ops.report.checks import drift, rejected_rooms, target_check


def _num(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(x)


def build(
    *,
    run_id: str,
    status: str,
    started: dt.datetime,
    finished: dt.datetime,
    version: str,
    meta: ModelMetadata,
    stats: RunStats,
    files: list[FileStats],
    skipped: list[dict[str, str]],
    settings: Any,
    predictor: str,
    reject_fraction: float,
    phases: dict[str, float] | None = None,
) -> RunReport:
    """The report.json of a run (its `failure` is set by the scorer once it has judged it)."""
    model = meta
    target, target_flags = target_check(stats, files, settings)
    rejected = rejected_rooms(stats)
    drift_ = drift(stats, model, rejected)
    return RunReport(
        run_id=run_id,
        status=status,
        started_at=started.isoformat(timespec="seconds"),
        finished_at=finished.isoformat(timespec="seconds"),
        duration_seconds=round((finished - started).total_seconds(), 3),
        model_version=version,
        model=model_card(version, model),
        inputs=[_input(f) for f in files],
        skipped_inputs=[SkippedInput(path=s["path"], sha256=s["sha256"]) for s in skipped],
        rows_read=stats.scored + stats.rejected,
        rows_scored=stats.scored,
        rows_rejected=stats.rejected,
        reject_fraction=reject_fraction,
        max_reject_fraction=settings.max_reject_fraction,
        rejects_by_reason=dict(stats.rejects),
        first_rejects=[_first_reject(r) for r in stats.first_rejects],
        out_of_range=OutOfRange(
            rows=stats.out_of_range,
            below=stats.below_range,
            above=stats.above_range,
            training_range=model.feature_range,
        ),
        prediction_summary=prediction_summary(stats),
        metrics=run_metrics(stats, model, target),
        target=target,
        interval=interval(version, model, stats),
        rejected_rooms=rejected,
        drift=drift_,
        # Every warning of the run, once, in plain words (also in the JSON summary line).
        warnings=drift_.warnings + target.warnings,
        settings=report_settings(settings),
        prediction_path=predictor,
        # Seconds per phase so far (model, plan, stream, finalize, report; publish: the summary).
        phases_seconds=dict(phases or {}),
        **comparability(_verdict(target, target_flags, drift_)),
        estimate=report_estimate(model, stats.sample.cols.get("rooms", np.empty(0)), stats.scored),
        logical_date=settings.logical_date.isoformat() if settings.logical_date else None,
    )


def _verdict(
    target: TargetCheck, target_flags: list[comparable.Flag], drift_: Drift
) -> comparable.Verdict:
    """The run's comparable verdict (the rule is batch.core.comparable's)."""
    return comparable.judge(
        in_training_units=target.comparable,
        drifted=drift_.differs_markedly,
        warnings=[comparable.Flag(comparable.DRIFT, w) for w in drift_.warnings] + target_flags,
    )


def comparability(verdict: comparable.Verdict) -> dict[str, Any]:
    """The verdict as report.json stores it: `comparable` and `comparability`."""
    return {
        "comparable": verdict.comparable,
        "comparability": Comparability(
            comparable=verdict.comparable,
            reasons=list(verdict.reasons),
            warnings=[RunWarning(kind=f.kind, message=f.message) for f in verdict.warnings],
        ),
    }


def drift_summary(rep: RunReport) -> dict[str, Any]:
    """The summary line's `drift`: the verdict, and the headline test's statistic, its
    threshold (the p-value it must fall below, alpha) and the rows it rests on."""
    checks = rep.drift.checks or []
    head = sorted(checks, key=lambda c: (not c.fails, 1.0 if c.p_value is None else c.p_value))
    top = head[0] if head else None
    return {
        "verdict": rep.drift.verdict,
        "check": top.name if top else None,
        "statistic": top.statistic if top else None,
        "p_value": top.p_value if top else None,
        "threshold": rep.drift.alpha,
        "n": rep.drift.input.count,
    }


def prediction_summary(stats: RunStats) -> PredictionSummary:
    """Count, mean, min, p50 and max of the predicted prices (p50 from the sample)."""
    n = stats.scored
    preds = stats.sample.cols.get("pred", np.empty(0))
    return PredictionSummary(
        count=n,
        mean=_num(stats.pred_sum / n) if n else None,
        min=_num(stats.pred_min) if n else None,
        p50=_num(float(np.median(preds))) if len(preds) else None,
        max=_num(stats.pred_max) if n else None,
        estimated=["p50"] if n > len(preds) else [],
        sample_size=len(preds),
    )


def run_metrics(stats: RunStats, meta: ModelMetadata, target: TargetCheck) -> RunMetrics | None:
    """Errors against the true prices the input carried (None: no input carried them)."""
    if not stats.actual_n:
        return None
    mse = stats.sq_err / stats.actual_n
    return RunMetrics(
        mse=mse,
        mae=stats.abs_err / stats.actual_n,
        rmse=math.sqrt(mse),
        rows=stats.actual_n,
        target_column=target.column,
        comparable=target.comparable,
        scale_ratio=target.scale_ratio,
        interval_level=meta.interval.level if meta.interval else None,
        interval_coverage=stats.band_covered / stats.band_rows if stats.band_rows else None,
        interval_rows=stats.band_rows,
    )


def interval(version: str, meta: ModelMetadata, stats: RunStats | None = None) -> ReportInterval:
    """Whether the predictions carry a price band, its promise, and (with the run's
    statistics) its width and coverage per rooms decile."""
    band = meta.interval
    if band is None:
        return ReportInterval(
            available=False,
            level=None,
            note=f"model {version} was trained before price bands existed, so "
            "predicted_low_k and predicted_high_k are empty; retrain to get them",
        )
    found = ReportInterval(
        available=True,
        level=band.level,
        method=band.method,
        calibration_rows=band.calibration_rows,
        test_coverage=band.test_coverage,
        lower_bound=band.lower_bound,
        lifted_rows=None if stats is None else band_rows.lifted_to_zero(stats, meta),
        deciles=None if stats is None else band_rows.deciles(stats, meta),
        sample_rows=None if stats is None else len(stats.sample.cols.get("rooms", ())),
    )
    if band.groups is not None:  # set only then: a report of a global band stays as it was
        found.groups = None if stats is None else band_rows.groups(stats, meta)
    return found


def _first_reject(row: dict[str, Any]) -> RejectedRow:
    """A rejected row as the report quotes it: its raw value as a short, escaped excerpt (the
    whole value is in rejects.csv)."""
    raw = row.get("raw_value")
    return RejectedRow.model_validate({**row, "raw_value": None if raw is None else excerpt(raw)})


def model_card(version: str, meta: ModelMetadata) -> ReportModel:
    """The model's metadata as the report shows it."""
    return ReportModel(
        version=version,
        created_at=meta.created_at,
        weight=meta.weight,
        bias=meta.bias,
        metrics=meta.metrics,
        ols_reference=meta.ols_reference,
        feature_range=meta.feature_range,
        hyperparameters=meta.hyperparameters,
        training_data=meta.data.source,
        model_sha256=meta.model_sha256,
    )


def _input(f: FileStats) -> ReportInput:
    return ReportInput(
        path=f.path,
        sha256=f.sha256,
        format=f.format,
        rows_read=f.rows_read,
        rows_scored=f.rows_scored,
        rows_rejected=f.rows_rejected,
        reject_fraction=f.rows_rejected / f.rows_read if f.rows_read else 0.0,
        rooms_column=f.rooms_column,
        target_column=f.target_column,
        notes=list(f.notes),
    )


def report_settings(settings: Any) -> ReportSettings:
    """The settings that shaped the run."""
    return ReportSettings(
        domain=Domain(min_exclusive=settings.domain_min, max_inclusive=settings.domain_max),
        feature_column=settings.feature_column,
        target_column=settings.target_column,
        on_drift=settings.on_drift,
        engine=settings.engine,
        chunk_rows=settings.chunk_rows,
        new_only=settings.new_only,
        model_version_requested=settings.model_version,
        output_formats=settings.output_formats,
    )


# -- why a refused run failed -------------------------------------------------------------------


def budget_failure(rep: RunReport, over_files: list[FileStats]) -> Failure:
    """Why a run over its reject budget failed, and the fix that fits what was rejected."""
    budget = rep.max_reject_fraction
    if rep.reject_fraction > budget:
        reason = (
            f"{rep.rows_rejected:,} of {rep.rows_read:,} rows "
            f"({rep.reject_fraction:.1%}) were rejected, over the budget of {budget:.1%}"
        )
    else:
        names = ", ".join(f"{f.path!r} ({f.rows_rejected / f.rows_read:.1%})" for f in over_files)
        one = len(over_files) == 1
        reason = (
            f"the run as a whole is within the reject budget of {budget:.1%}, but "
            f"{names} on {'its' if one else 'their'} own {'is' if one else 'are'} over it"
        )
    reasons = rep.rejects_by_reason
    top = max(reasons, key=lambda r: reasons[r]) if rep.rows_rejected else None
    if top == "out_of_domain":
        fix = (
            "most rejected rows hold numbers outside the plausible range of rooms: check the "
            "units of the feed before anything else"
        )
    elif top in ("missing", "not_a_number", "non_finite"):
        fix = (
            f"most rejected rows are {top.replace('_', ' ')}: check how the feed fills its "
            "rooms column (the wrong column? --feature-column) and fix the source"
        )
    else:
        fix = "fix the input, or raise --max-reject-fraction if such rows are expected"
    return Failure(cause="reject_budget", reason=reason, fix=fix)


def drift_failure(rep: RunReport) -> Failure:
    """Why a run failed on drift (--on-drift fail), and what to do about it."""
    return Failure(
        cause="drift",
        reason="the input differs markedly from the data the model was trained on "
        f"({len(rep.drift.warnings) - 1} warning(s)) and --on-drift fail was asked for",
        fix="check the feed against the warnings in the report, retrain on data like it, "
        "or score with --on-drift warn",
    )
