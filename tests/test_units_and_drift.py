"""The unit detector (each named unit and the boundaries between them) and the drift rule that
knows its sample size. Pure modules: no model, no files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from batch.core import drift, units


def feed(n=400, seed=0):
    """Predictions like the model's ($K, 1970s) and true prices around them."""
    rng = np.random.default_rng(seed)
    pred = np.clip(rng.normal(22.5, 6.5, n), 5, 50)
    true = np.clip(pred * rng.lognormal(0, 0.3, n), 5, 50)
    return true, pred


@pytest.mark.parametrize(
    "transform, unit",
    [
        (lambda t: t, "$K"),
        (lambda t: t * 25, "$K"),  # a modern market in $K
        (lambda t: t * 0.6, "$K"),  # a cheap batch
        (lambda t: t * 1000, "dollars"),
        (lambda t: t * 25_000, "dollars"),  # a modern market in dollars
        (lambda t: t / 100, "$100K"),
        (lambda t: t * 25 / 100, "$100K"),  # a modern market in $100K
        (lambda t: np.log(t * 1000), "log dollars"),
        (lambda t: np.log(t * 25_000), "log dollars"),
        (lambda t: np.log10(t * 1000), "log dollars"),
        (lambda t: np.log(t), "log $K"),
        (lambda t: np.log10(t), "log $K"),
        (lambda t: t * 100, "unknown"),  # between $K and dollars
        (lambda t: t * 1e7, "unknown"),
        (lambda t: t / 1e4, "unknown"),
    ],
)
def test_each_unit_is_named(transform, unit):
    true, pred = feed()
    found = units.detect(transform(true), pred)
    assert found.name == unit, (found, unit)
    assert found.is_training_unit is (unit == "$K")
    if unit == "$K":
        assert found.warning("medv") is None
    else:
        sentence = found.warning("medv")
        assert (unit if unit != "unknown" else "does not know") in sentence
        assert "not comparable" in sentence
        assert "times the predictions" in sentence


@pytest.mark.parametrize(
    "factor, unit",
    [
        (0.5, "$K"),
        (0.49, "$100K"),
        (50, "$K"),
        (51, "unknown"),
        (249, "unknown"),
        (250, "dollars"),
        (100_000, "dollars"),
        (100_001, "unknown"),
        (0.002, "$100K"),
        (0.0019, "unknown"),
    ],
)
def test_the_boundaries_between_units(factor, unit):
    """The ratio is the median of true/predicted: scaling predictions exactly sets it."""
    _, pred = feed()
    assert units.detect(pred * factor, pred).name == unit


def test_too_few_rows_decide_nothing():
    found = units.detect(np.array([1000.0, 2000, 3000, 4000]), np.array([20.0, 21, 22, 23]))
    assert not found.decided and found.is_training_unit is None and found.warning("x") is None


def test_non_positive_and_non_finite_rows_are_left_out():
    true, pred = feed(50)
    true = np.concatenate([true * 1000, [np.nan, -5, 0, np.inf]])
    pred = np.concatenate([pred, [20, 20, 20, 20]])
    found = units.detect(true, pred)
    assert found.name == "dollars" and found.rows == 50


# -- drift ---------------------------------------------------------------------------------------

TRAIN = drift.Training(n=404, mean=6.267, std=0.709)


def sample_of(values, low=3.561, high=8.725):
    v = np.asarray(values, dtype=float)
    return drift.Sample(
        n=len(v),
        mean=float(v.mean()),
        std=float(v.std()),
        outside=int(((v < low) | (v > high)).sum()),
        whole=int((v == np.round(v)).sum()),
    )


def rooms(n, shift=0.0, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(TRAIN.mean + shift, TRAIN.std, n).round(3) + 0.0005


def failing(values):
    s = sample_of(values)
    found = drift.checks(s, TRAIN)
    return drift.verdict(s, found), {c.name for c in found if c.fails}


def test_a_small_feed_with_two_outliers_is_not_drift():
    """The bundled north sample: 34 rows, two of them (3.2 and 9.2) outside the training range."""
    values = np.concatenate([rooms(32), [3.2, 9.2]])
    verdict, failed = failing(values)
    assert verdict == "no_marked_difference" and not failed


def test_a_small_feed_shifted_by_one_and_a_half_rooms_is_drift():
    verdict, failed = failing(rooms(34, shift=1.5))
    assert verdict == "differs_markedly" and "mean" in failed


def test_a_large_feed_with_many_rows_outside_the_range_is_drift():
    values = np.concatenate([rooms(9_000), np.full(1_000, 9.5)])
    assert "outside_training_range" in failing(values)[1]


def test_a_small_but_significant_shift_in_a_huge_feed_is_not_drift():
    """p is tiny at n = 1,000,000, but 0.3 sd is below the effect floor."""
    s = drift.Sample(n=1_000_000, mean=TRAIN.mean + 0.21, std=TRAIN.std, outside=2_000, whole=0)
    found = drift.checks(s, TRAIN)
    assert drift.verdict(s, found) == "no_marked_difference"
    assert next(c for c in found if c.name == "mean").p_value < drift.ALPHA


def test_spread_and_whole_numbers():
    wide = rooms(500) * 0 + np.random.default_rng(3).normal(TRAIN.mean, TRAIN.std * 3, 500) + 0.0005
    assert "spread" in failing(wide)[1]
    assert "whole_numbers" in failing(np.random.default_rng(4).integers(4, 9, 100))[1]


def test_few_rows_and_no_rows():
    assert failing(rooms(10))[0] == "too_few_rows"
    assert drift.checks(drift.Sample(0, 0.0, 0.0, 0, 0), TRAIN) == []


def test_the_headline_is_the_failing_check_with_the_smallest_p():
    s = sample_of(rooms(34, shift=1.5))
    found = drift.checks(s, TRAIN)
    top = drift.headline(found)
    assert top.name == "mean" and top.fails and math.isfinite(top.statistic)


def test_binomial_tail_is_exact_for_small_counts():
    # P(X >= 2), X ~ Binomial(34, 2/405), by hand: 1 - q^34 - 34 p q^33
    p = 2 / 405
    q = 1 - p
    expected = 1 - q**34 - 34 * p * q**33
    assert math.isclose(drift._binomial_upper_tail(2, 34, p), expected, rel_tol=1e-9)


# -- through the CLI -----------------------------------------------------------------------------


def test_the_bundled_north_sample_passes_on_drift_fail(models, tmp_path):
    from tests.helpers import REPO, run_cli

    res = run_cli(
        "jobs.score",
        "--models-dir",
        models,
        "--output-dir",
        tmp_path / "out",
        "--input",
        REPO / "sample_inputs" / "suburbs_north.csv",
        "--on-drift",
        "fail",
    )
    assert res.code == 0, res.stderr[-2000:]


def test_a_34_row_feed_shifted_by_one_and_a_half_rooms_exits_8(models, tmp_path):
    import pandas as pd

    from tests.helpers import REPO, run_cli

    north = pd.read_csv(REPO / "sample_inputs" / "suburbs_north.csv")
    north["rm"] = pd.to_numeric(north["rm"], errors="coerce") + 1.5
    shifted = tmp_path / "shifted.csv"
    north.dropna(subset=["rm"]).head(34).to_csv(shifted, index=False)
    res = run_cli(
        "jobs.score",
        "--models-dir",
        models,
        "--output-dir",
        tmp_path / "out",
        "--input",
        shifted,
        "--on-drift",
        "fail",
    )
    assert res.code == 8, res.stderr[-2000:]
    assert res.json["status"] == "drift_detected"
