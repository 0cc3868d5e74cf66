"""One training run: data -> fit -> sanity check -> band calibration -> registry.publish(vN) -> gate."""

from __future__ import annotations

import datetime as dt
import logging
import platform
from typing import Any

import numpy as np

from batch.core import intervals
from batch.core.errors import ConfigError, ModelError, UnfitModel
from batch.model import datasets, linear
from batch.model.registry import MODEL_FILE, PRODUCTION, SANITY_RATIO, Registry
from batch.ops import plots
from batch.settings import Settings

log = logging.getLogger(__name__)

TRAINING_SAMPLE_MAX = 2000  # points of the training data kept in metadata for the scorer's fit plot


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
    lineage = Lineage.from_settings(settings, "train", run_id)
    source = datasets.keras_cache_file() if settings.data == "boston" else settings.data
    columns = [(settings.feature_column or "rm", "float64"), (settings.target_column, "float64")]
    lineage.start([DatasetRef.file(source, schema=columns)])
    try:
        summary = _train(settings, registry, promote)
    except BaseException as exc:  # interrupted runs fail too (the event says how)
        lineage.fail(str(exc) or type(exc).__name__)
        raise
    version = summary["version"]
    lineage.complete(
        [
            DatasetRef.file(
                registry.root / version,
                extra={
                    "model_version": version,
                    "promoted": summary["promoted"],
                    "test_mse": summary["test_mse"],
                },
            )
        ]
    )
    summary["run_id"] = run_id
    return summary


def _train(settings: Settings, registry: Registry, promote: str) -> dict[str, Any]:
    data = datasets.load(settings.data, settings.feature_column, settings.target_column)
    log.info(
        "training data %s: %d train rows, %d test rows",
        data.source,
        len(data.x_train),
        len(data.x_test),
    )
    check_fit_settings(settings, len(data.x_train), data.source)

    from batch.model import network as m

    m.set_determinism(settings.seed)
    net = m.build(settings.learning_rate, settings.optimizer)
    history = net.fit(
        m.as_column(data.x_train),
        data.y_train.reshape(-1, 1),
        batch_size=settings.batch_size,
        epochs=settings.epochs,
        validation_split=settings.validation_split,
        shuffle=True,
        verbose=0,
        callbacks=[m.progress_callback(settings.epochs, settings.log_every_epochs)],
    )
    loss = [float(v) for v in history.history["loss"]]
    val_loss = [float(v) for v in history.history.get("val_loss", [np.nan] * len(loss))]

    pred_test = m.predict(net, data.x_test).astype("float64")
    err = pred_test - data.y_test.astype("float64")
    test_mse, test_mae = float(np.mean(err**2)), float(np.mean(np.abs(err)))
    weight, bias = m.weight_and_bias(net)
    if not all(np.isfinite(v) for v in (weight, bias, test_mse, loss[-1])):
        raise ModelError(
            f"training diverged (final loss {loss[-1]}, weight {weight}, bias {bias}); nothing was "
            f"published — lower --learning-rate (now {settings.learning_rate}) or check the data"
        )
    # The baseline every regression must beat: the training mean, predicted for every test row.
    baseline_mse = float(
        np.mean(
            (float(np.mean(data.y_train, dtype="float64")) - data.y_test.astype("float64")) ** 2
        )
    )
    train_var = float(np.var(data.y_train, dtype="float64"))
    if not test_mse < SANITY_RATIO * baseline_mse:
        raise UnfitModel(
            f"the fit is no better than predicting the mean price (test MSE {test_mse:.4g}, "
            f"baseline {baseline_mse:.4g}; it must be below {SANITY_RATIO} x the baseline), so "
            f"nothing was published — likely cause: {likely_cause(loss, settings, train_var)}",
            summary={"test_mse": test_mse, "baseline_mse": baseline_mse, "loss": loss[-1]},
        )
    slope, intercept = m.ols(data.x_train, data.y_train)
    ols_mse = float(np.mean((slope * data.x_test + intercept - data.y_test) ** 2))
    # Keras 3 holds out the last rows: floor(n * (1 - split)) are fitted, the rest validate.
    rows_fit = int(np.floor(len(data.x_train) * (1 - settings.validation_split)))
    rows_val = len(data.x_train) - rows_fit
    interval = _calibrate_band(net, data, rows_fit, settings.interval_level)
    metadata = {
        "version": None,  # set by the registry when it numbers the version
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "feature": "rm",
        "target": "medv",
        "weight": weight,
        "bias": bias,
        "hyperparameters": {
            "optimizer": settings.optimizer,
            "learning_rate": settings.learning_rate,
            "epochs": settings.epochs,
            "batch_size": settings.batch_size,
            "validation_split": settings.validation_split,
            "seed": settings.seed,
        },
        "data": {
            "source": data.source,
            "sha256": data.sha256,
            "rows_train": rows_fit,
            "rows_val": rows_val,
            "rows_test": len(data.x_test),
            "rows_dropped": data.rows_dropped,
            "test_split": datasets.TEST_SPLIT,
            "split_seed": datasets.SPLIT_SEED,
        },
        "metrics": {
            "loss": loss[-1],
            "val_loss": val_loss[-1],
            "test_mse": test_mse,
            "test_mae": test_mae,
        },
        "baseline_mse": baseline_mse,
        "ols_reference": {"slope": slope, "intercept": intercept, "test_mse": ols_mse},
        "interval": interval,
        # The float32 values' shortest decimals (3.561, not 3.561000108718872), so a row with
        # exactly the training minimum is not flagged as outside the range.
        "feature_range": {"min": _decimal(data.x_train.min()), "max": _decimal(data.x_train.max())},
        "feature_stats": _stats(data.x_train),
        "versions": _versions(),
        "training_sample": _sample(data.x_train, data.y_train),
    }
    log.info(
        "trained: weight %.4f bias %.4f loss %.2f val_loss %.2f test MSE %.2f "
        "(baseline %.2f, OLS reference %.2f)",
        weight,
        bias,
        loss[-1],
        val_loss[-1],
        test_mse,
        baseline_mse,
        ols_mse,
    )
    log.info(
        "%.0f%% price band calibrated on %d %s rows: test coverage %.3f on %d rows",
        100 * interval["level"],
        interval["calibration_rows"],
        interval["calibration_source"],
        interval["test_coverage"],
        interval["test_rows"],
    )

    evaluated_on = (
        f"the test split of {data.source} (sha256 {data.sha256[:12] or 'unknown'}, "
        f"{len(data.x_test)} rows)"
    )

    def evaluate(version: str) -> float:
        """Production's MSE on this candidate's test rows (the gate's like-for-like comparison)."""
        prod_model, prod_meta = registry.load(version)
        prod_data = prod_meta.get("data", {})
        if prod_data.get("sha256") != data.sha256 or prod_data.get("source") != data.source:
            log.info(
                "training data differs from production %s's (%s, sha256 %s); both are "
                "compared on %s",
                version,
                prod_data.get("source"),
                str(prod_data.get("sha256"))[:12],
                evaluated_on,
            )
        prod_err = m.predict(prod_model, data.x_test).astype("float64") - data.y_test
        return float(np.mean(prod_err**2))

    with registry.staging() as staged:
        net.save(staged / MODEL_FILE)
        # Verified once here, so that scoring a plain Dense(1) needs no TensorFlow (batch.model.linear).
        fold = linear.verify(
            staged / MODEL_FILE,
            datasets.sha256_file(staged / MODEL_FILE),
            (metadata["feature_range"]["min"], metadata["feature_range"]["max"]),
        )
        if fold is not None:
            metadata[linear.FOLD_KEY] = fold
        rows = ["epoch,loss,val_loss"] + [
            f"{i},{a!r},{b!r}" for i, (a, b) in enumerate(zip(loss, val_loss), start=1)
        ]
        (staged / "history.csv").write_text("\n".join(rows) + "\n")
        title = f"single neuron, {settings.epochs} epochs"
        (staged / "loss.png").write_bytes(
            plots.loss_png(loss, val_loss, f"Loss per epoch ({title})")
        )
        (staged / "fit.png").write_bytes(
            plots.fit_png(
                weight,
                bias,
                data.x_train,
                data.y_train,
                f"Model fit ({title})",
                test_x=data.x_test,
                test_y=data.y_test,
                interval=interval,
            )
        )
        decision = registry.publish(
            staged,
            metadata,
            promote,
            settings.promote_tolerance,
            evaluate=evaluate,
            evaluated_on=evaluated_on,
        )
    return {
        "status": "succeeded",
        "version": decision["version"],
        "promoted": decision["promoted"],
        "reason": decision["reason"],
        "production": decision["production"],
        "previous_production": decision["previous_production"],
        "test_mse": test_mse,
        "production_test_mse": decision["production_test_mse"],
        "evaluated_on": {
            "source": data.source,
            "sha256": data.sha256,
            "rows": len(data.x_test),
            "split": "test",
        },
        "baseline_mse": baseline_mse,
        "metrics": metadata["metrics"],
        "weight": weight,
        "bias": bias,
        "interval": {"level": interval["level"], "test_coverage": interval["test_coverage"]},
        "models_dir": str(settings.models_dir),
    }


MIN_FIT_ROWS = 2  # a line (weight and bias) needs two points


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


def likely_cause(loss: list[float], settings: Settings, mean_mse: float) -> str:
    """The most likely reason a finite fit is no better than the mean, read from its loss curve.

    mean_mse: the training loss of always predicting the training mean (the prices' variance).
    """
    first, last = loss[0], loss[-1]
    # Where the last tenth of the epochs began: a loss still falling there wants more epochs.
    earlier = loss[max(0, len(loss) - 1 - max(1, len(loss) // 10))]
    # Steps too large for the valley: the loss jumps up between epochs, or stays orders of
    # magnitude above the mean's (a random start with sane steps is within ~15x of it).
    jumps = any(b > 1.1 * a for a, b in zip(loss, loss[1:]))
    if last >= first or jumps or last > 50 * mean_mse:
        return (
            f"the loss did not fall to a sensible level, so --learning-rate "
            f"{settings.learning_rate} is too high for --optimizer {settings.optimizer}; "
            "lower it"
        )
    if last < 0.98 * earlier:
        return (
            f"the loss was still falling when training stopped; raise --epochs (now "
            f"{settings.epochs}) or --learning-rate (now {settings.learning_rate})"
        )
    if last > 2 * mean_mse:
        return (
            f"the loss stalled far above what the mean alone gives, so --learning-rate "
            f"{settings.learning_rate} does not suit --optimizer {settings.optimizer} "
            "(too high overshoots, too low crawls); try it ten times lower or higher"
        )
    return (
        f"the loss settled, so the data: rooms predict the price in --data {settings.data} "
        "no better than its mean; check the file and --feature-column/--target-column"
    )


def _calibrate_band(net, data: datasets.TrainingData, rows_fit: int, level: float) -> dict:
    """Split-conformal band on rows the fit never updated on; checked on the test rows.

    Calibration rows: Keras's validation tail of the training split (the last rows, already
    shuffled by the split), which the fit only ever evaluates. The test rows stay out of it, so
    they give an independent check of the band (test_coverage) as they do of the MSE. The scale
    model (how |residual| grows with rooms) is fitted on the fit's own rows, so it too is
    independent of the calibration rows and the coverage guarantee stays exact.
    """
    from batch.model import network as m

    x_fit, y_fit = data.x_train[:rows_fit], data.y_train[:rows_fit]
    x_cal, y_cal, source = data.x_train[rows_fit:], data.y_train[rows_fit:], "validation"
    if len(x_cal) == 0:
        # --validation-split 0 leaves no held-out training rows; the test rows are all there is.
        log.warning(
            "no validation rows (--validation-split 0): calibrating the price band on "
            "the test rows, so its test coverage is not an independent check"
        )
        x_cal, y_cal, source = data.x_test, data.y_test, "test"
    params = intervals.calibrate(
        x_cal,
        y_cal,
        m.predict(net, x_cal),
        level,
        x_scale=x_fit,
        residuals_scale=y_fit.astype("float64") - m.predict(net, x_fit),
        lower_bound=0.0,
    )  # a median price is never below $0K
    pred_test = m.predict(net, data.x_test)
    low, high = intervals.band(data.x_test, pred_test, params)
    return {
        **params,
        "calibration_source": source,
        "test_coverage": intervals.coverage(data.y_test, low, high),
        "test_rows": int(len(data.x_test)),
        "test_mean_width": float(np.mean(high.astype("float64") - low)),
    }


def _decimal(value: np.floating) -> float:
    return float(str(np.float32(value)))


def _stats(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, "float64")
    q = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {
        "count": int(len(x)),
        "mean": float(x.mean()),
        "std": float(x.std()),
        "p05": float(q[0]),
        "p25": float(q[1]),
        "p50": float(q[2]),
        "p75": float(q[3]),
        "p95": float(q[4]),
    }


def _sample(x: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:
    idx = np.arange(len(x))
    if len(idx) > TRAINING_SAMPLE_MAX:
        idx = np.sort(np.random.default_rng(0).choice(idx, TRAINING_SAMPLE_MAX, replace=False))
    return {"rm": [float(v) for v in x[idx]], "medv": [float(v) for v in y[idx]]}


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
