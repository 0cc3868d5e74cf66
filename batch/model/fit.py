"""The fit and its evaluation: Dense(1) trained on the training rows, judged on the test rows.

A fit that diverged, or that is no better than predicting the training mean, is refused here,
before anything is written to the registry.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from batch.core.errors import ModelError, UnfitModel
from batch.model.datasets import TrainingData
from batch.model.gate import SANITY_RATIO
from batch.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Fit:
    """A trained network with its loss curves (val_loss is NaN per epoch without validation)."""

    net: Any
    loss: list[float]
    val_loss: list[float]


@dataclass
class Evaluation:
    """The fit's numbers on the test rows and the least-squares line beside it."""

    weight: float
    bias: float
    test_mse: float
    test_mae: float
    baseline_mse: float  # predicting the training mean for every test row
    ols_slope: float
    ols_intercept: float
    ols_mse: float


def fit(settings: Settings, data: TrainingData) -> Fit:
    """Dense(1) fitted with the settings' optimizer, epochs and validation split."""
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
    return Fit(net, loss, val_loss)


def evaluate(settings: Settings, data: TrainingData, trained: Fit) -> Evaluation:
    """The fit's test errors; ModelError when it diverged, UnfitModel when it fails the sanity
    check (no better than the training mean), so nothing is published for either."""
    from batch.model import network as m

    loss = trained.loss
    pred_test = m.predict(trained.net, data.x_test).astype("float64")
    err = pred_test - data.y_test.astype("float64")
    test_mse, test_mae = float(np.mean(err**2)), float(np.mean(np.abs(err)))
    weight, bias = m.weight_and_bias(trained.net)
    if not all(np.isfinite(v) for v in (weight, bias, test_mse, loss[-1])):
        raise ModelError(
            f"training diverged (final loss {loss[-1]}, weight {weight}, bias {bias}); nothing was "
            f"published — lower --learning-rate (now {settings.learning_rate}) or check the data"
        )
    # The baseline every regression must beat: the training mean, predicted for every test row.
    mean = float(np.mean(data.y_train, dtype="float64"))
    baseline_mse = float(np.mean((mean - data.y_test.astype("float64")) ** 2))
    if not test_mse < SANITY_RATIO * baseline_mse:
        train_var = float(np.var(data.y_train, dtype="float64"))
        raise UnfitModel(
            f"the fit is no better than predicting the mean price (test MSE {test_mse:.4g}, "
            f"baseline {baseline_mse:.4g}; it must be below {SANITY_RATIO} x the baseline), so "
            f"nothing was published — likely cause: {likely_cause(loss, settings, train_var)}",
            summary={"test_mse": test_mse, "baseline_mse": baseline_mse, "loss": loss[-1]},
        )
    slope, intercept = m.ols(data.x_train, data.y_train)
    ols_mse = float(np.mean((slope * data.x_test + intercept - data.y_test) ** 2))
    return Evaluation(
        float(weight), float(bias), test_mse, test_mae, baseline_mse, slope, intercept, ols_mse
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


def finite_or_none(value: float) -> float | None:
    """`value`, or None where it is NaN or infinite (metadata records no such number)."""
    return value if math.isfinite(value) else None
