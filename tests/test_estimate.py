"""The label-free estimate's pure parts (issue 25 item 2): fast, no model, no files."""

from __future__ import annotations

import numpy as np
import pytest

from batch.core import intervals


def _rows(seed: int = 3, n: int = 400):
    """Rooms and prices whose error grows with rooms (as Boston's does above its median)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(6.3, 0.7, n)
    pred = 9 * x - 34
    y = pred + rng.normal(0, 1, n) * (1 + 3 * np.maximum(x - 6.3, 0))
    return x, y, pred


def test_bigger_houses_get_a_bigger_estimate_and_it_tracks_the_real_error():
    x, y, pred = _rows()
    band = intervals.calibrate(x[:200], y[:200], pred[:200], 0.9)
    profile = intervals.error_profile(x[:200], y[:200], pred[:200], band)
    assert profile["method"] == intervals.ESTIMATE_METHOD and profile["rows"] == 200
    xt, yt, pt = x[200:], y[200:], pred[200:]
    small, big = xt < 6.0, xt > 6.8
    est_small, _ = intervals.estimate(xt[small], profile)
    est_big, cov_big = intervals.estimate(xt[big], profile)
    real_small = np.abs(yt - pt)[small].mean()
    real_big = np.abs(yt - pt)[big].mean()
    assert est_big > 2 * est_small
    # Closer to each group's real error than the calibration rows' single MAE is.
    assert abs(est_small - real_small) < abs(profile["mae"] - real_small)
    assert abs(est_big - real_big) < abs(profile["mae"] - real_big)
    assert 0 < cov_big <= 1
    assert len(profile["coverage_bins"]) == len(profile["coverage_edges"]) + 1 == 4


def test_no_rows_no_estimate_and_a_quartile_without_rows_gives_no_coverage():
    x, y, pred = _rows()
    band = intervals.calibrate(x, y, pred, 0.9)
    profile = intervals.error_profile(x, y, pred, band)
    assert intervals.estimate(np.array([np.nan]), profile) is None
    profile["coverage_bins"][0] = None
    mae, coverage = intervals.estimate(np.array([6.0, 7.0]), profile)
    assert mae > 0 and coverage is None


def test_a_model_without_an_error_profile_gives_a_reason_not_a_crash():
    from batch.ops.labels.estimate import report_estimate
    from tests.model_helpers import fake_metadata

    meta = fake_metadata()
    assert meta.error_profile is None
    est = report_estimate(meta, np.array([6.0, 6.5]), 2)
    assert est.available is False and "no error profile" in (est.note or "")
    assert est.estimated_mae is None


@pytest.mark.parametrize("edges", [[], [6.0, 6.5]])
def test_the_metadata_document_refuses_a_profile_whose_bins_do_not_match(edges):
    from pydantic import ValidationError

    from batch.core.documents.metadata import ErrorProfile

    profile = {
        "method": "m", "source": "validation", "rows": 3, "mae": 1.0,
        "scale": {"center": 6, "intercept": 1, "slope_below": 0, "slope_above": 0, "floor": 0.25},
        "coverage_edges": edges, "coverage_bins": [0.9], "coverage_rows": [3],
    }  # fmt: skip
    if edges:
        with pytest.raises(ValidationError, match="one coverage"):
            ErrorProfile.model_validate(profile)
    else:
        assert ErrorProfile.model_validate(profile).rows == 3
