"""One scoring run, orchestrated: checks -> lock -> plan -> engine -> budget -> report -> publish.

Only the order of steps lives here. Fail-fast checks (engine available, model version resolves)
come before the output lock; the model is loaded and verified before any input is hashed.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

from batch import engines
from batch.core import interrupts
from batch.core.errors import BatchError, DriftDetected, RejectBudgetExceeded
from batch.core.ids import new_run_id
from batch.engines.base import Job
from batch.io.plan import plan_inputs
from batch.model import linear
from batch.model.network import Predictor, predictor_for
from batch.model.registry import MODEL_FILE, Registry
from batch.ops import report
from batch.ops.lineage import Lineage, arrow_schema, score_inputs, score_outputs
from batch.settings import Settings
from batch.storage import fs, rundir

log = logging.getLogger(__name__)


def score(settings: Settings) -> dict[str, Any]:
    """Run one scoring run end to end; returns the JSON summary (raises BatchError on failure).

    Whatever the outcome, it is then recorded for operators (runs.jsonl, the Prometheus textfile,
    index.html; see batch.ops.monitoring), which never changes the outcome itself.
    """
    from batch.ops.monitoring import after_score

    started = dt.datetime.now(dt.UTC)
    try:
        summary = _score(settings, started)
    except BatchError as exc:
        after_score(
            settings,
            {
                "status": "failed",
                "exit_code": exc.exit_code,
                "error": str(exc),
                **(getattr(exc, "summary", {}) or {}),
            },
            exc.exit_code,
            started,
        )
        raise
    except KeyboardInterrupt:
        after_score(settings, {"status": "interrupted", "exit_code": 130}, 130, started)
        raise
    except Exception:
        after_score(
            settings,
            {"status": "failed", "exit_code": 1, "error": "unexpected failure (a bug)"},
            1,
            started,
        )
        raise
    after_score(settings, summary, 0, started)
    return summary


def _score(settings: Settings, started: dt.datetime) -> dict[str, Any]:
    phases: dict[str, float] = {}
    clock = time.monotonic()

    def phase(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        phases[name] = round(phases.get(name, 0.0) + now - clock, 3)
        clock = now

    engines.check_available(settings.engine)
    registry = Registry(settings.models_dir)
    version = registry.resolve(settings.model_version)
    run_id = new_run_id(started)
    out = rundir.OutputDir(settings.output_dir)
    out.lock(run_id)
    lineage = Lineage.from_settings(settings, "score", run_id)
    started_lineage = False
    staged: Path | None = None
    try:
        out.clean_leftovers()
        # A Dense(1) whose fold was verified at publish is scored without TensorFlow; any
        # other version (or a fold that no longer matches its record) loads Keras.
        fold, meta = registry.load_fold(version)
        if fold is not None:
            model = None
            predictor = Predictor(
                meta["model_sha256"], fold, verified=linear.describe(meta[linear.FOLD_KEY])
            )
        else:
            model, meta = registry.load(version)
            predictor = predictor_for(
                model,
                meta.get("model_sha256", ""),
                lambda: (registry.root / version / MODEL_FILE).read_bytes(),
            )
        phase("model")
        domain = (settings.domain_min, settings.domain_max)
        plan = plan_inputs(
            settings.input,
            settings.feature_column,
            settings.target_column,
            out.scored_hashes() if settings.new_only else None,
            domain,
        )
        phase("plan")
        lineage.start(
            score_inputs(
                [fp.src for fp in plan.files], arrow_schema(plan.schema), registry.root, version
            )
        )
        started_lineage = True
        if not plan.files:
            log.info(
                "nothing new to score: all %d input file(s) were scored before (--new-only)",
                len(plan.skipped),
            )
            lineage.complete([])
            return {
                "status": "nothing_new",
                "run_id": None,
                "run_dir": None,
                "rows_scored": 0,
                "rows_rejected": 0,
                "skipped_inputs": len(plan.skipped),
                "warnings": [],
            }
        log.info(
            "run %s: scoring %d file(s) with model %s (%s)",
            run_id,
            len(plan.files),
            version,
            settings.model_version,
        )

        staged = out.staging(run_id)
        job = Job(
            str(staged),
            {
                i: plan.context(i, domain=domain, meta=meta, version=version, run_id=run_id)
                for i, fp in enumerate(plan.files)
                if fp.scorable
            },
            predictor,
            settings.chunk_rows,
        )
        with engines.open_engine(settings) as engine:
            result = engine.run(plan, job, model)
        phase("engine")  # everything from starting the engine to closing it, then split:
        phases.update(result.phases)
        phases["engine"] = round(max(phases["engine"] - sum(result.phases.values()), 0.0), 3)

        stats = result.stats
        total = stats.scored + stats.rejected
        fraction = stats.rejected / total if total else 0.0
        budget = settings.max_reject_fraction
        over_files = [
            f for f in result.files if f.rows_read and f.rows_rejected / f.rows_read > budget
        ]
        over_budget = fraction > budget or bool(over_files)
        rep = report.build(
            run_id=run_id,
            status="failed" if over_budget else "succeeded",
            started=started,
            finished=dt.datetime.now(dt.UTC),
            version=version,
            meta=meta,
            stats=stats,
            files=result.files,
            skipped=plan.skipped,
            settings=settings,
            predictor=result.prediction_path,
            reject_fraction=fraction,
        )
        drifted = settings.on_drift == "fail" and rep["drift"]["differs_markedly"]
        refused = over_budget or drifted
        if refused and not over_budget:
            rep["status"] = "failed"
        rep["failure"] = (
            None
            if not refused
            else (
                report.budget_failure(rep, over_files) if over_budget else report.drift_failure(rep)
            )
        )
        for warning in rep["warnings"]:
            log.warning("%s", warning)
        rendered = report.render(rep, meta, stats, registry.root / version, plots=not refused)
        phase("report")
        rep["phases_seconds"] = dict(phases)
        with rundir.writing(staged):
            report.write(staged, rep, rendered)
        summary = {
            "status": rep["status"],
            "run_id": run_id,
            "rows_scored": stats.scored,
            "rows_rejected": stats.rejected,
            "model_version": version,
            "warnings": rep["warnings"],
        }
        if refused:
            final = out.publish_failed(staged, run_id)
            staged = None
            summary.update(
                run_dir=str(final),
                status="reject_budget_exceeded" if over_budget else "drift_detected",
            )
            error = RejectBudgetExceeded if over_budget else DriftDetected
            raise error(
                f"{rep['failure']['reason']}; nothing was published — "
                f"{rep['failure']['fix']} (see {final / 'rejects.csv'} and "
                f"{final / 'report.html'})",
                summary,
            )
        interrupts.hold()  # from the rename on, the run is reported as published
        final = out.publish(staged, run_id)
        staged = None
        phase("publish")
        summary.update(
            run_dir=str(final), report=str(final / "report.html"), phases_seconds=dict(phases)
        )
        log.info(
            "run %s succeeded: %d rows scored, %d rejected, %d out of the training range; "
            "report: %s",
            run_id,
            stats.scored,
            stats.rejected,
            stats.out_of_range,
            final / "report.html",
        )
        lineage.complete(
            score_outputs(final, stats.scored, stats.rejected, arrow_schema(plan.schema))
        )
        return summary
    except BaseException as exc:
        if not started_lineage:
            lineage.start()
        lineage.fail(str(exc) or type(exc).__name__)
        if isinstance(exc, OSError):  # a write no narrower guard caught: the output location
            raise rundir.location_error(settings.output_dir, exc) from None
        raise
    finally:
        if staged is not None:
            fs.rmtree(staged, ignore_errors=True)
        out.unlock()
