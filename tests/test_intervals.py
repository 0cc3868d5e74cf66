"""Price bands: split-conformal coverage on synthetic data with known noise and on Boston's 506 rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from batch.core import intervals
from batch.model import datasets
from tests.helpers import BOSTON_CSV

LEVEL = 0.9


def noisy_line(rng: np.random.Generator, n: int, heteroscedastic: bool):
    """y = 3x + 2 + noise whose spread is constant, or grows away from 6 rooms like Boston's."""
    x = rng.uniform(3.5, 8.8, n)
    sd = 1.0 + 2.5 * np.abs(x - 6.0) if heteroscedastic else np.full(n, 3.0)
    return x, 3 * x + 2 + rng.normal(0, sd)


def split_run(
    seed: int,
    heteroscedastic: bool,
    n_fit: int = 300,
    n_cal: int = 150,
    n_test: int = 2000,
    level: float = LEVEL,
):
    """Fit a least-squares line, calibrate on fresh rows, return the test rows' inside-mask."""
    rng = np.random.default_rng(seed)
    x_fit, y_fit = noisy_line(rng, n_fit, heteroscedastic)
    x_cal, y_cal = noisy_line(rng, n_cal, heteroscedastic)
    x_test, y_test = noisy_line(rng, n_test, heteroscedastic)
    w, b = np.polyfit(x_fit, y_fit, 1)
    params = intervals.calibrate(
        x_cal, y_cal, w * x_cal + b, level, x_scale=x_fit, residuals_scale=y_fit - (w * x_fit + b)
    )
    low, high = intervals.band(x_test, w * x_test + b, params)
    return x_test, (y_test >= low) & (y_test <= high), high - low


@pytest.mark.parametrize("heteroscedastic", [False, True])
def test_mean_coverage_over_many_seeds_is_the_level(heteroscedastic):
    """Split conformal promises level <= E[coverage] < level + 1/(n_cal + 1); 400 seeds pin it."""
    covers = [split_run(seed, heteroscedastic)[1].mean() for seed in range(400)]
    mean = float(np.mean(covers))
    # Standard error of the mean over 400 seeds is about 0.0013; 0.006 is over four of them.
    assert LEVEL - 0.006 <= mean <= LEVEL + 1 / 151 + 0.006, mean


@pytest.mark.parametrize("level", [0.5, 0.8, 0.95])
def test_other_levels_are_honoured_too(level):
    covers = [split_run(seed, True, level=level)[1].mean() for seed in range(200)]
    assert level - 0.01 <= float(np.mean(covers)) <= level + 1 / 151 + 0.01


def test_the_band_widens_where_the_noise_grows():
    """With noise growing away from 6 rooms, coverage holds at the extremes and in the middle,
    and the band is narrower in the middle than at the extremes (a constant band cannot be both)."""
    inside_mid, inside_far, width_mid, width_far = [], [], [], []
    for seed in range(100):
        x, inside, width = split_run(seed, True)
        mid, far = np.abs(x - 6) < 0.8, np.abs(x - 6) > 2.0
        inside_mid.append(inside[mid].mean())
        inside_far.append(inside[far].mean())
        width_mid.append(width[mid].mean())
        width_far.append(width[far].mean())
    assert np.mean(inside_mid) > 0.85 and np.mean(inside_far) > 0.85
    assert np.mean(width_far) > 2 * np.mean(width_mid)


def boston_all() -> tuple[np.ndarray, np.ndarray]:
    data = datasets.load(str(BOSTON_CSV))
    x = np.concatenate([data.x_train, data.x_test]).astype("float64")
    y = np.concatenate([data.y_train, data.y_test]).astype("float64")
    assert len(x) == 506
    return x, y


@pytest.mark.parametrize("line", ["least_squares", "tutorial"])
def test_boston_coverage_over_random_splits(line):
    """The 506 Boston rows, split 282 fit / 122 calibration / 102 test as training does, 300
    times: on average the promised share of held-out prices falls inside the band, for the
    least-squares line and for the tutorial's flatter line (price = 3.35 x rooms + 1.3), whose
    residuals are far from constant."""
    x, y = boston_all()
    covers = []
    for seed in range(300):
        idx = np.random.default_rng(seed).permutation(len(x))
        fit, cal, test = idx[:282], idx[282:404], idx[404:]
        w, b = np.polyfit(x[fit], y[fit], 1) if line == "least_squares" else (3.35, 1.3)
        params = intervals.calibrate(
            x[cal],
            y[cal],
            w * x[cal] + b,
            LEVEL,
            x_scale=x[fit],
            residuals_scale=y[fit] - (w * x[fit] + b),
        )
        low, high = intervals.band(x[test], w * x[test] + b, params)
        covers.append(intervals.coverage(y[test], low, high))
    assert LEVEL - 0.015 <= float(np.mean(covers)) <= LEVEL + 1 / 123 + 0.015, np.mean(covers)


def test_boston_training_split_coverage_with_the_trainers_rows():
    """The project's own split (the loader's 404/102, Keras's 122-row validation tail as
    calibration): about 90% of the 102 test prices fall inside."""
    data = datasets.load(str(BOSTON_CSV))
    x_fit, y_fit = data.x_train[:282], data.y_train[:282]
    x_cal, y_cal = data.x_train[282:], data.y_train[282:]
    w, b = np.polyfit(x_fit.astype("float64"), y_fit.astype("float64"), 1)
    params = intervals.calibrate(
        x_cal, y_cal, w * x_cal + b, LEVEL, x_scale=x_fit, residuals_scale=y_fit - (w * x_fit + b)
    )
    low, high = intervals.band(data.x_test, w * data.x_test + b, params)
    # 102 rows: one binomial standard error is 0.03.
    assert 0.83 <= intervals.coverage(data.y_test, low, high) <= 0.97


def test_band_always_contains_the_prediction_and_is_float32():
    rng = np.random.default_rng(1)
    x, y = noisy_line(rng, 200, True)
    params = intervals.calibrate(x, y, 3 * x + 2, LEVEL)
    rooms = np.concatenate([rng.uniform(0.01, 20, 10_000), [0.01, 6.0, 20.0]])
    pred = (rooms * 37.5 - 90).astype("float32")  # any prediction, large and small
    low, high = intervals.band(rooms, pred, params)
    assert low.dtype == np.float32 and high.dtype == np.float32
    assert np.all(low <= pred) and np.all(pred <= high)
    assert np.all(high - low > 0)  # the scale's floor: never a zero-width band


def test_a_lower_bound_lifts_low_but_never_above_the_prediction():
    rng = np.random.default_rng(3)
    x, y = noisy_line(rng, 200, True)
    params = intervals.calibrate(x, y, 3 * x + 2, LEVEL, lower_bound=0.0)
    rooms = np.array([0.5, 1.0, 3.0, 6.0, 9.0, 20.0])
    pred = np.array([-4.0, 0.5, 11.0, 20.0, 29.0, 62.0], dtype="float32")
    low, high = intervals.band(rooms, pred, params)
    unbounded = intervals.band(rooms, pred, {**params, "lower_bound": None})
    assert np.all(low <= pred) and np.all(pred <= high)
    np.testing.assert_array_equal(low, np.minimum(np.maximum(unbounded[0], 0), pred))
    assert low[0] == pred[0] == -4.0 and low[1] == 0.0  # a negative prediction bounds itself
    np.testing.assert_array_equal(high, unbounded[1])


def test_params_are_json_ready_and_round_trip():
    rng = np.random.default_rng(2)
    x, y = noisy_line(rng, 100, False)
    params = intervals.calibrate(x, y, 3 * x + 2, 0.9)
    again = json.loads(json.dumps(params))
    assert again == params
    assert again["method"] == intervals.METHOD and again["level"] == 0.9
    assert again["calibration_rows"] == 100 and again["quantile_rank"] == 91
    assert again["guaranteed"] is True and again["lower_bound"] is None
    low1, high1 = intervals.band(x, 3 * x + 2, params)
    low2, high2 = intervals.band(x, 3 * x + 2, again)
    np.testing.assert_array_equal(low1, low2)
    np.testing.assert_array_equal(high1, high2)


def test_no_params_means_no_band():
    """Versions trained before calibration have no `interval`: the scorer gets None."""
    assert intervals.band(np.array([6.0]), np.array([20.0]), None) is None


def test_the_quantile_is_the_conformal_rank():
    # Constant scale (no slope can be fitted on one x), so scores are |residuals| / intercept.
    x = np.full(9, 6.0)
    resid = np.arange(1.0, 10.0)  # 1..9
    params = intervals.calibrate(x, resid, np.zeros(9), 0.8)
    assert params["quantile_rank"] == 8  # ceil(10 * 0.8)
    assert params["quantile"] * params["scale"]["intercept"] == pytest.approx(8.0)


def test_too_few_rows_for_the_level_is_flagged(caplog):
    x = np.linspace(4, 8, 5)
    params = intervals.calibrate(x, x, x + 1, 0.9)  # ceil(6 * 0.9) = 6 > 5 rows
    assert params["guaranteed"] is False and params["quantile_rank"] == 5
    assert "too few" in caplog.text


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="level"):
        intervals.calibrate(np.ones(3), np.ones(3), np.ones(3), 1.0)
    with pytest.raises(ValueError, match="finite"):
        intervals.calibrate(np.array([1.0, np.nan]), np.ones(2), np.ones(2), 0.9)
