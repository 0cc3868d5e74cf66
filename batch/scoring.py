"""One scoring run, orchestrated: checks -> lock -> plan -> engine -> budget -> report -> publish.

Only the order of steps lives here. Fail-fast checks (engine available, model version resolves)
come before the output lock; the model is loaded and verified before any input is hashed.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, NoReturn

from batch import engines
from batch.core import interrupts
from batch.core.documents import ModelMetadata, RunReport
from batch.core.errors import BatchError, DriftDetected, RejectBudgetExceeded
from batch.core.ids import new_run_id
from batch.core.stats import FileStats
from batch.engines.base import EngineResult, Job
from batch.engines.challenger import Shadow, load_model, load_shadow, widen
from batch.io import memory, settle
from batch.io.plan import Plan, plan_inputs
from batch.io.source import Limits
from batch.model.network import Predictor
from batch.model.registry import Registry
from batch.ops import days, ledger, plots, report
from batch.ops.lineage import Lineage, arrow_schema, input_quality, score_inputs, score_outputs
from batch.ops.report.phases import Phases
from batch.settings import Settings
from batch.storage import fs, rundir

log = logging.getLogger(__name__)

STOP_LINEAGE_SECONDS = 1.0  # the FAIL event of a run stopped by a signal waits at most this long


def score(settings: Settings, day_rule: days.DayRule = None) -> dict[str, Any]:
    """Run one scoring run end to end; returns the JSON summary (raises BatchError on failure).

    `day_rule` is a backfill's (batch.ops.days): skip a logical date already scored, or
    re-score it and mark the earlier runs superseded. Whatever the outcome, it is then recorded
    for operators (runs.jsonl, the Prometheus textfile, index.html; see batch.ops.monitoring),
    which never changes the outcome itself; a skipped day is no run and records nothing.
    """
    from batch.ops.monitoring import after_score

    settings = days.for_day(settings)
    memory.choose_pool()
    started = dt.datetime.now(dt.UTC)
    day = {"logical_date": days.day_text(settings)}
    try:
        summary = _score(settings, started, day_rule)
    except BatchError as exc:
        failed = {"status": "failed", "exit_code": exc.exit_code, "error": str(exc), **day}
        after_score(
            settings, {**failed, **(getattr(exc, "summary", {}) or {})}, exc.exit_code, started
        )
        raise
    except KeyboardInterrupt:
        after_score(settings, {"status": "interrupted", "exit_code": 130, **day}, 130, started)
        raise
    except Exception:
        error = "unexpected failure (a bug)"
        after_score(
            settings, {"status": "failed", "exit_code": 1, "error": error, **day}, 1, started
        )
        raise
    if summary["status"] != days.ALREADY_SCORED:
        after_score(settings, summary, 0, started)
    return summary


@dataclass
class _Run:
    """One run's state, handed from step to step while the output lock is held."""

    settings: Settings
    started: dt.datetime
    run_id: str
    registry: Registry
    version: str
    out: rundir.OutputDir
    lineage: Lineage
    phases: Phases
    lineage_started: bool = False
    staged: fs.Location | None = None  # removed on the way out unless published
    challenger: str | None = None  # the version scored in the main one's shadow (--challenger)
    shadow: tuple[Shadow, ModelMetadata] | None = None  # and once loaded, with its metadata
    written_types: list[tuple[str, str]] | None = None  # predictions.parquet's, for lineage
    day_rule: days.DayRule = None  # a backfill's: skip a day already done, or re-score it
    supersedes: list[str] | None = None  # the earlier runs of the day this one re-scores

    @property
    def domain(self) -> tuple[float, float]:
        return (self.settings.domain_min, self.settings.domain_max)


@dataclass(frozen=True)
class _Verdict:
    """The report of a run and whether it is refused (over its reject budget, or drifted)."""

    rep: RunReport
    over_budget: bool

    @property
    def refused(self) -> bool:
        return self.rep.failure is not None


def _score(settings: Settings, started: dt.datetime, day_rule: days.DayRule) -> dict[str, Any]:
    phases = Phases()
    registry, version = _fail_fast(settings)
    run_id = new_run_id(started)
    lineage = Lineage.from_settings(settings, "score", run_id)
    out = rundir.OutputDir(settings.output_dir)
    run = _Run(settings, started, run_id, registry, version, out, lineage, phases)
    run.day_rule = day_rule
    run.challenger = registry.resolve(settings.challenger) if settings.challenger else None
    out.lock(run_id)  # nothing between here and the try: the finally below releases the lock
    try:
        return _score_locked(run)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):  # a stop ends the run within seconds
            lineage.timeout = min(lineage.timeout, STOP_LINEAGE_SECONDS)
        if not run.lineage_started:
            lineage.start()
        lineage.fail(str(exc) or type(exc).__name__)
        if isinstance(exc, OSError):  # a write no narrower guard caught: the output location
            raise rundir.location_error(settings.output_dir, exc) from None
        raise
    finally:
        if run.staged is not None:
            fs.rmtree(run.staged, ignore_errors=True)
        out.unlock()


def _fail_fast(settings: Settings) -> tuple[Registry, str]:
    """The checks that need no lock: the engine is available and the model version resolves."""
    engines.check_available(settings.engine)
    registry = Registry(settings.models_dir)
    return registry, registry.resolve(settings.model_version)


def _score_locked(run: _Run) -> dict[str, Any]:
    """The steps once the output lock is held: model -> plan -> engine -> report -> publish."""
    run.out.clean_leftovers()
    earlier = days.earlier_runs(run.settings, run.day_rule)  # under the lock: no race
    if earlier and run.day_rule == "skip":
        log.info("%s was scored already by %s: skipped", days.day_text(run.settings), earlier[-1])
        return days.already_scored(run.settings, earlier)
    run.supersedes = earlier
    model, meta, predictor = load_model(run.registry, run.version)
    run.shadow = load_shadow(run.registry, run.challenger) if run.challenger else None
    run.phases.end("model")
    plan = _plan(run)
    if not plan.files:
        return _nothing_new(run, plan)
    log.info(
        "run %s: scoring %d file(s) with model %s (%s)",
        run.run_id,
        len(plan.files),
        run.version,
        run.settings.model_version,
    )
    run.staged = run.out.staging(run.run_id)
    if memory.limited() is None:
        # The report's plots import matplotlib (about half a second): meanwhile the run streams
        # and the main thread mostly waits for the writers. Under an address-space limit the
        # stream's memory is handed back first, so the import waits for the report.
        plots.warm_up()
    result = _run_engine(run, plan, model, meta, predictor)
    plan = widen(plan) if run.shadow else plan  # from here on: what the files hold, for lineage
    verdict = _report(run, plan, result, meta)
    _observed(run, plan, result, verdict.rep)
    return _publish(run, plan, verdict, result)


def _plan(run: _Run) -> Plan:
    """Every input inspected before anything is written; lineage starts with the plan's inputs."""
    settings = run.settings
    plan = plan_inputs(
        settings.input,
        settings.feature_column,
        settings.target_column,
        (run.out.scored_hashes() | ledger.scored_hashes(settings.output_dir))
        if settings.new_only
        else None,
        run.domain,
        Limits(settings.max_batch_bytes, settings.max_columns),
    )
    run.phases.end("plan")
    run.lineage.start(
        score_inputs(
            [fp.src for fp in plan.files],
            arrow_schema(plan.parquet_schema),
            run.registry.root,
            run.version,
        )
    )
    run.lineage_started = True
    return plan


def _nothing_new(run: _Run, plan: Plan) -> dict[str, Any]:
    """The summary of a --new-only run whose every input was scored before."""
    log.info(
        "nothing new to score: all %d input file(s) were scored before (--new-only)",
        len(plan.skipped),
    )
    run.lineage.complete([])
    return {
        "status": "nothing_new",
        "run_id": None,
        "run_dir": None,
        "rows_scored": 0,
        "rows_rejected": 0,
        "skipped_inputs": len(plan.skipped),
        "logical_date": days.day_text(run.settings),
        "warnings": [],
    }


def _run_engine(
    run: _Run, plan: Plan, model: Any, meta: ModelMetadata, predictor: Predictor
) -> EngineResult:
    """Score every scorable file into the staging folder with the engine the settings name."""
    assert run.staged is not None
    job = Job(
        run.staged,
        {
            i: plan.context(i, domain=run.domain, meta=meta, version=run.version, run_id=run.run_id)
            for i, fp in enumerate(plan.files)
            if fp.scorable
        },
        predictor,
        run.settings.chunk_rows,
        run.settings.output_formats,
        run.shadow[0] if run.shadow else None,
    )
    with engines.open_engine(run.settings) as engine:
        result = engine.run(widen(plan) if run.shadow else plan, job, model)
    phases = run.phases.seconds
    run.phases.end("engine")  # everything from starting the engine to closing it, then split:
    phases.update(result.phases)
    phases["engine"] = round(max(phases["engine"] - sum(result.phases.values()), 0.0), 3)
    return result


def _budget(settings: Settings, result: EngineResult) -> tuple[float, list[FileStats], bool]:
    """(the run's reject fraction, the files over the budget, whether the run is over it)."""
    stats = result.stats
    total = stats.scored + stats.rejected
    fraction = stats.rejected / total if total else 0.0
    budget = settings.max_reject_fraction
    over_files = [f for f in result.files if f.rows_read and f.rows_rejected / f.rows_read > budget]
    return fraction, over_files, fraction > budget or bool(over_files)


def _report(run: _Run, plan: Plan, result: EngineResult, metadata: ModelMetadata) -> _Verdict:
    """Build, judge (reject budget, drift), render and write the run's report into staging."""
    assert run.staged is not None
    meta = metadata
    fraction, over_files, over_budget = _budget(run.settings, result)
    rep = report.build(
        run_id=run.run_id,
        status="failed" if over_budget else "succeeded",
        started=run.started,
        finished=dt.datetime.now(dt.UTC),
        version=run.version,
        meta=meta,
        stats=result.stats,
        files=result.files,
        skipped=plan.skipped,
        settings=run.settings,
        predictor=result.prediction_path,
        reject_fraction=fraction,
    )
    rep.supersedes = list(run.supersedes or [])
    if run.shadow is not None and result.shadow is not None:
        rep.challenger = report.challenger(
            run.challenger or "", run.shadow[1], result.shadow, rep, result.stats
        )
    drifted = run.settings.on_drift == "fail" and rep.drift.differs_markedly
    refused = over_budget or drifted
    if refused and not over_budget:
        rep.status = "failed"
    rep.failure = (
        None
        if not refused
        else (report.budget_failure(rep, over_files) if over_budget else report.drift_failure(rep))
    )
    for warning in rep.warnings or []:
        log.warning("%s", warning)
    version_dir = run.registry.root / run.version
    rendered = report.render(rep, meta, result.stats, version_dir, plots=not refused)
    run.phases.end("report")
    rep.phases_seconds = dict(run.phases.seconds)
    with rundir.writing(run.staged):
        report.write(run.staged, rep, rendered)
    return _Verdict(rep, over_budget)


def _observed(run: _Run, plan: Plan, result: EngineResult, rep: RunReport) -> None:
    """The closing lineage event's inputs: each file with the types predictions.parquet holds
    (the plan's, with number columns as the run settled them) and its measured data quality."""
    if run.lineage.enabled:
        assert run.staged is not None
        run.written_types = arrow_schema(
            settle.written_schema(run.staged, plan.parquet_schema, plan.numbers)
        )
        files, quality = [fp.src for fp in plan.files], input_quality(result.files, rep)
        run.lineage.observed(
            score_inputs(files, run.written_types, run.registry.root, run.version, quality)
        )


def _publish(run: _Run, plan: Plan, verdict: _Verdict, result: EngineResult) -> dict[str, Any]:
    """Publish the run (its summary), or keep its diagnosis in failed/ and raise why."""
    assert run.staged is not None
    rep, stats = verdict.rep, result.stats
    summary = {
        "status": rep.status,
        "run_id": run.run_id,
        "rows_scored": stats.scored,
        "rows_rejected": stats.rejected,
        "model_version": run.version,
        "warnings": rep.warnings or [],
        "comparable": rep.comparable,
        "drift": report.drift_summary(rep),
        "logical_date": days.day_text(run.settings),
    }
    if rep.supersedes:
        summary["supersedes"] = rep.supersedes
    if verdict.refused:
        _refuse(run, verdict, summary)
    interrupts.hold()  # from the rename on, the run is reported as published
    final = run.out.publish(run.staged, run.run_id)
    run.staged = None
    _record(run, rep)
    run.phases.end("publish")
    summary.update(
        run_dir=str(final),
        report=str(final / "report.html"),
        phases_seconds=dict(run.phases.seconds),
    )
    log.info(
        "run %s succeeded: %d rows scored, %d rejected, %d out of the training range; report: %s",
        run.run_id,
        stats.scored,
        stats.rejected,
        stats.out_of_range,
        final / "report.html",
    )
    run.lineage.complete(
        score_outputs(
            final,
            stats.scored,
            stats.rejected,
            run.written_types or arrow_schema(plan.parquet_schema),
        )
    )
    return summary


def _record(run: _Run, rep: RunReport) -> None:
    """Add the published run's inputs to the ledger (--new-only's memory that outlives prune).
    The run is published already: a ledger that cannot be written is a warning, and its
    report still remembers the inputs until the run is pruned."""
    try:
        now = dt.datetime.now(dt.UTC)
        ledger.record(run.settings.output_dir, run.run_id, rep.inputs, now, rep.logical_date)
    except OSError as exc:
        log.warning("could not add run %s to the ledger (%s)", run.run_id, exc)


def _refuse(run: _Run, verdict: _Verdict, summary: dict[str, Any]) -> NoReturn:
    """Move the refused run to failed/ (its diagnosis only) and raise its error."""
    assert run.staged is not None
    rep = verdict.rep
    final = run.out.publish_failed(run.staged, run.run_id)
    run.staged = None
    summary.update(
        run_dir=str(final),
        status="reject_budget_exceeded" if verdict.over_budget else "drift_detected",
    )
    error = RejectBudgetExceeded if verdict.over_budget else DriftDetected
    assert rep.failure is not None
    raise error(
        f"{rep.failure.reason}; nothing was published — "
        f"{rep.failure.fix} (see {final / 'rejects.csv'} and "
        f"{final / 'report.html'})",
        summary,
    )
