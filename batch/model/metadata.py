"""What a new version's metadata.json says: the fit, its data, its test errors, its price band.

Built as a ModelMetadata for Registry.publish, which numbers it and records the model's hash.
"""

from __future__ import annotations

import datetime as dt
import logging
import platform
from typing import Any

import numpy as np

from batch.core import intervals
from batch.core.documents import ModelMetadata
from batch.core.documents.metadata import (
    ErrorProfile,
    FeatureStats,
    Hyperparameters,
    Interval,
    SoftwareVersions,
    TrainingSample,
)
from batch.model import datasets
from batch.model.fit import Evaluation, Fit, finite_or_none
from batch.model.layout import UNNUMBERED
from batch.settings import Settings

log = logging.getLogger(__name__)

TRAINING_SAMPLE_MAX = 2000  # points of the training data kept in metadata for the scorer's fit plot
# Placeholder until Registry.publish hashes the staged model file.
UNHASHED = "0" * 64


def fitted_rows(settings: Settings, data: datasets.TrainingData) -> int:
    """The rows the fit updated on: Keras 3 holds out the last rows of the training split,
    floor(n * (1 - split)) are fitted and the rest validate."""
    return int(np.floor(len(data.x_train) * (1 - settings.validation_split)))


def describe(
    settings: Settings,
    data: datasets.TrainingData,
    trained: Fit,
    ev: Evaluation,
    interval: Interval,
) -> ModelMetadata:
    """The metadata of the fitted model, unnumbered and unhashed (publish sets both)."""
    rows_fit = fitted_rows(settings, data)
    return ModelMetadata.model_validate(
        {
            "version": UNNUMBERED,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "feature": "rm",
            "target": "medv",
            "weight": ev.weight,
            "bias": ev.bias,
            "hyperparameters": _hyperparameters(settings),
            "data": {
                "source": data.source,
                "sha256": data.sha256,
                "rows_train": rows_fit,
                "rows_val": len(data.x_train) - rows_fit,
                "rows_test": len(data.x_test),
                "rows_dropped": data.rows_dropped,
                "test_split": datasets.TEST_SPLIT,
                "split_seed": datasets.SPLIT_SEED,
            },
            "metrics": {
                "loss": trained.loss[-1],
                "val_loss": finite_or_none(trained.val_loss[-1]),
                "test_mse": ev.test_mse,
                "test_mae": ev.test_mae,
            },
            "baseline_mse": ev.baseline_mse,
            "ols_reference": {
                "slope": finite_or_none(ev.ols_slope),
                "intercept": finite_or_none(ev.ols_intercept),
                "test_mse": finite_or_none(ev.ols_mse),
            },
            "interval": interval,
            # The float32 values' shortest decimals (3.561, not 3.561000108718872), so a row with
            # exactly the training minimum is not flagged as outside the range.
            "feature_range": {
                "min": _decimal(data.x_train.min()),
                "max": _decimal(data.x_train.max()),
            },
            "feature_stats": _stats(data.x_train),
            "versions": _versions(),
            "training_sample": _sample(data.x_train, data.y_train),
            "model_sha256": UNHASHED,
            "error_profile": error_profile(settings, data, trained, interval),
        }
    )


def calibrate_band(settings: Settings, data: datasets.TrainingData, trained: Fit) -> Interval:
    """Split-conformal band on rows the fit never updated on; checked on the test rows.

    Calibration rows: Keras's validation tail of the training split (the last rows, already
    shuffled by the split), which the fit only ever evaluates. The test rows stay out of it, so
    they give an independent check of the band (test_coverage) as they do of the MSE. The scale
    model (how |residual| grows with rooms) is fitted on the fit's own rows, so it too is
    independent of the calibration rows and the coverage guarantee stays exact.
    """
    from batch.model import network as m

    rows_fit = fitted_rows(settings, data)
    net = trained.net
    x_fit, y_fit = data.x_train[:rows_fit], data.y_train[:rows_fit]
    x_cal, y_cal, source = calibration_rows(settings, data)
    if source == "test":
        # --validation-split 0 leaves no held-out training rows; the test rows are all there is.
        log.warning(
            "no validation rows (--validation-split 0): calibrating the price band on "
            "the test rows, so its test coverage is not an independent check"
        )
    params = intervals.calibrate(
        x_cal,
        y_cal,
        m.predict(net, x_cal),
        settings.interval_level,
        x_scale=x_fit,
        residuals_scale=y_fit.astype("float64") - m.predict(net, x_fit),
        lower_bound=0.0,  # a median price is never below $0K
        groups=settings.interval_groups,
    )
    pred_test = m.predict(net, data.x_test)
    bounds = intervals.band(data.x_test, pred_test, params)
    assert bounds is not None  # calibrated just above
    low, high = bounds
    return Interval.model_validate(
        {
            **params,
            "calibration_source": source,
            "test_coverage": intervals.coverage(data.y_test, low, high),
            "test_rows": int(len(data.x_test)),
            "test_mean_width": float(np.mean(high.astype("float64") - low)),
        }
    )


def calibration_rows(
    settings: Settings, data: datasets.TrainingData
) -> tuple[np.ndarray, np.ndarray, str]:
    """(rooms, prices, source) of the rows the band is calibrated on: Keras's validation tail
    of the training split, or the test rows when there is none (--validation-split 0)."""
    rows_fit = fitted_rows(settings, data)
    if rows_fit < len(data.x_train):
        return data.x_train[rows_fit:], data.y_train[rows_fit:], "validation"
    return data.x_test, data.y_test, "test"


def error_profile(
    settings: Settings, data: datasets.TrainingData, trained: Fit, interval: Interval
) -> ErrorProfile:
    """What the label-free estimate of a run's error needs: the calibration rows' absolute
    errors as a hinge in rooms, and the band's coverage per rooms quartile of those rows."""
    from batch.model import network as m

    x_cal, y_cal, source = calibration_rows(settings, data)
    pred = m.predict(trained.net, x_cal)
    band = interval.model_dump(mode="json")
    profile = intervals.error_profile(x_cal, y_cal, pred, band)
    return ErrorProfile.model_validate({**profile, "source": source})


def _hyperparameters(settings: Settings) -> Hyperparameters:
    return Hyperparameters(
        optimizer=settings.optimizer,
        learning_rate=settings.learning_rate,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        validation_split=settings.validation_split,
        seed=settings.seed,
    )


def _decimal(value: np.floating[Any]) -> float:
    return float(str(np.float32(value)))


def _stats(x: np.ndarray) -> FeatureStats:
    x = np.asarray(x, "float64")
    q = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])
    return FeatureStats(
        count=int(len(x)),
        mean=float(x.mean()),
        std=float(x.std()),
        p05=float(q[0]),
        p25=float(q[1]),
        p50=float(q[2]),
        p75=float(q[3]),
        p95=float(q[4]),
    )


def _sample(x: np.ndarray, y: np.ndarray) -> TrainingSample:
    idx = np.arange(len(x))
    if len(idx) > TRAINING_SAMPLE_MAX:
        idx = np.sort(np.random.default_rng(0).choice(idx, TRAINING_SAMPLE_MAX, replace=False))
    return TrainingSample(rm=[float(v) for v in x[idx]], medv=[float(v) for v in y[idx]])


def _versions() -> SoftwareVersions:
    import keras
    import tensorflow as tf

    return SoftwareVersions(
        python=platform.python_version(), tensorflow=tf.__version__, keras=keras.__version__
    )
