"""One training run: data -> fit -> sanity check -> band calibration -> publish vN -> gate."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from batch.core.documents import ModelMetadata
from batch.core.errors import ConfigError
from batch.model import datasets, linear
from batch.model.fit import Evaluation, Fit, evaluate, fit
from batch.model.layout import MODEL_FILE, PRODUCTION
from batch.model.metadata import calibrate_band, describe
from batch.model.registry import Registry
from batch.ops import plots
from batch.settings import Settings

log = logging.getLogger(__name__)

MIN_FIT_ROWS = 2  # a line (weight and bias) needs two points


def train(settings: Settings, promote: str = "auto", if_missing: bool = False) -> dict[str, Any]:
    """Train, publish and gate one model version; returns the JSON summary.

    With lineage set up (openlineage_url / openlineage_file) the run emits START, then COMPLETE
    or FAIL; `run_id` in the summary is the id those events carry.
    """
    from batch.core.ids import new_run_id
    from batch.ops.lineage import DatasetRef, Lineage

    registry = Registry(settings.models_dir, settings.registry_lock_timeout)
    if if_missing:
        current = registry.aliases().get(PRODUCTION)
        if current and current in registry.versions():
            log.info("production model %s exists; nothing to train (--if-missing)", current)
            return {
                "status": "skipped",
                "version": current,
                "promoted": False,
                "reason": "a production model exists (--if-missing)",
            }
    # Before any fitting: a damaged alias file or production version, or a registry location
    # that cannot be written, would otherwise only show after the fit (or after publishing).
    registry.check()
    run_id = new_run_id()
    lineage = Lineage.from_settings(settings, "train", run_id, engine="keras")
    source = datasets.keras_cache_file() if settings.data == "boston" else settings.data
    columns = [(settings.feature_column or "rm", "float64"), (settings.target_column, "float64")]
    lineage.start([DatasetRef.file(source, schema=columns)])
    try:
        summary = _train(settings, registry, promote)
    except BaseException as exc:  # interrupted runs fail too (the event says how)
        lineage.fail(str(exc) or type(exc).__name__)
        raise
    version = summary["version"]
    extra = {"model_version": version, "promoted": summary["promoted"]}
    lineage.complete(
        [DatasetRef.file(registry.root / version, extra={**extra, "test_mse": summary["test_mse"]})]
    )
    summary["run_id"] = run_id
    return summary


def _train(settings: Settings, registry: Registry, promote: str) -> dict[str, Any]:
    """The named steps: data, fit, evaluation, band, metadata, then publish with the gate."""
    data = datasets.load(settings.data, settings.feature_column, settings.target_column)
    log.info(
        "training data %s: %d train rows, %d test rows",
        data.source,
        len(data.x_train),
        len(data.x_test),
    )
    check_fit_settings(settings, len(data.x_train), data.source)
    trained = fit(settings, data)
    ev = evaluate(settings, data, trained)
    interval = calibrate_band(settings, data, trained)
    metadata = describe(settings, data, trained, ev, interval)
    _log_fit(metadata, ev)
    evaluated_on = (
        f"the test split of {data.source} (sha256 {data.sha256[:12] or 'unknown'}, "
        f"{len(data.x_test)} rows)"
    )
    with registry.staging() as staged:
        metadata = _stage(settings, staged, data, trained, metadata)
        decision = registry.publish(
            staged,
            metadata,
            promote,
            settings.promote_tolerance,
            evaluate=_production_mse(registry, data, evaluated_on),
            evaluated_on=evaluated_on,
        )
    return _summary(settings, data, metadata, ev, decision)


def _log_fit(metadata: ModelMetadata, ev: Evaluation) -> None:
    metrics, band = metadata.metrics, metadata.interval
    log.info(
        "trained: weight %.4f bias %.4f loss %.2f val_loss %.2f test MSE %.2f "
        "(baseline %.2f, OLS reference %.2f)",
        ev.weight,
        ev.bias,
        metrics.loss,
        np.nan if metrics.val_loss is None else metrics.val_loss,
        ev.test_mse,
        ev.baseline_mse,
        ev.ols_mse,
    )
    assert band is not None
    log.info(
        "%.0f%% price band calibrated on %d %s rows (%s): test coverage %.3f on %d rows",
        100 * band.level,
        band.calibration_rows,
        band.calibration_source,
        "one band" if band.groups is None else f"{len(band.groups.groups)} rooms groups",
        np.nan if band.test_coverage is None else band.test_coverage,
        band.test_rows,
    )


def _production_mse(
    registry: Registry, data: datasets.TrainingData, evaluated_on: str
) -> Callable[[str], float]:
    """The gate's like-for-like comparison: a version's MSE on this candidate's test rows."""
    from batch.model import network as m

    def production_mse(version: str) -> float:
        prod_model, prod_meta = registry.load(version)
        prod_data = prod_meta.data
        if prod_data.sha256 != data.sha256 or prod_data.source != data.source:
            log.info(
                "training data differs from production %s's (%s, sha256 %s); both are "
                "compared on %s",
                version,
                prod_data.source,
                prod_data.sha256[:12],
                evaluated_on,
            )
        prod_err = m.predict(prod_model, data.x_test).astype("float64") - data.y_test
        return float(np.mean(prod_err**2))

    return production_mse


def _stage(
    settings: Settings,
    staged: Path,
    data: datasets.TrainingData,
    trained: Fit,
    metadata: ModelMetadata,
) -> ModelMetadata:
    """Save the model and its pictures into the staging folder; the metadata with its fold."""
    trained.net.save(staged / MODEL_FILE)
    # Verified once here, so that scoring a plain Dense(1) needs no TensorFlow (batch.model.linear).
    fold = linear.verify(
        staged / MODEL_FILE,
        datasets.sha256_file(staged / MODEL_FILE),
        (metadata.feature_range.min, metadata.feature_range.max),
    )
    if fold is not None:
        metadata = metadata.model_copy(update={"fold": fold})
    loss, val_loss = trained.loss, trained.val_loss
    rows = ["epoch,loss,val_loss"] + [
        f"{i},{a!r},{b!r}" for i, (a, b) in enumerate(zip(loss, val_loss), start=1)
    ]
    (staged / "history.csv").write_text("\n".join(rows) + "\n")
    title = f"single neuron, {settings.epochs} epochs"
    (staged / "loss.png").write_bytes(plots.loss_png(loss, val_loss, f"Loss per epoch ({title})"))
    band = None if metadata.interval is None else metadata.interval.model_dump(mode="json")
    fit_png = plots.fit_png(
        metadata.weight,
        metadata.bias,
        data.x_train,
        data.y_train,
        f"Model fit ({title})",
        test_x=data.x_test,
        test_y=data.y_test,
        interval=band,
    )
    (staged / "fit.png").write_bytes(fit_png)
    return metadata


def _summary(
    settings: Settings,
    data: datasets.TrainingData,
    metadata: ModelMetadata,
    ev: Evaluation,
    decision: dict[str, Any],
) -> dict[str, Any]:
    """The training's JSON summary line."""
    band = metadata.interval
    assert band is not None
    return {
        "status": "succeeded",
        "version": decision["version"],
        "promoted": decision["promoted"],
        "reason": decision["reason"],
        "production": decision["production"],
        "previous_production": decision["previous_production"],
        "test_mse": ev.test_mse,
        "production_test_mse": decision["production_test_mse"],
        "evaluated_on": {
            "source": data.source,
            "sha256": data.sha256,
            "rows": len(data.x_test),
            "split": "test",
        },
        "baseline_mse": ev.baseline_mse,
        "metrics": metadata.metrics.model_dump(mode="json"),
        "weight": ev.weight,
        "bias": ev.bias,
        "interval": {
            "level": band.level,
            "test_coverage": band.test_coverage,
            "groups": "none" if band.groups is None else band.groups.by,
        },
        "models_dir": str(settings.models_dir),
    }


def check_fit_settings(settings: Settings, rows: int, source: str) -> None:
    """ConfigError (exit 2) for settings Keras would refuse on `rows` training rows, before fitting.

    Keras fits the first floor(rows x (1 - validation_split)) rows and validates on the rest, and
    refuses a split that leaves either part empty.
    """
    split = settings.validation_split
    rows_fit = int(np.floor(rows * (1 - split)))
    if rows_fit < MIN_FIT_ROWS:
        raise ConfigError(
            f"--validation-split {split} leaves {rows_fit} of the {rows} training rows of "
            f"{source} to fit (at least {MIN_FIT_ROWS} are needed); lower --validation-split / "
            "BATCH_VALIDATION_SPLIT or train on more data"
        )
    if split > 0 and rows_fit == rows:
        raise ConfigError(
            f"--validation-split {split} holds out no row of the {rows} training rows of "
            f"{source} (Keras refuses an empty validation set); raise it to at least "
            f"{1 / rows:.3g} or set it to 0"
        )
