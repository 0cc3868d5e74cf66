"""The price band calibrated per rooms group (--interval-groups rooms_decile): the grouping rule,
the metadata it writes, and the scorer, report and labels using each row's group."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from batch.core import interval_groups as ig
from batch.core import intervals
from batch.core.documents import parse_metadata
from batch.core.documents._base import dump
from tests.model_helpers import fake_metadata

# -- the grouping rule ----------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0.5, 0.8, 0.9, 0.95, 0.99])
def test_min_rows_is_the_least_n_whose_conformal_rank_fits(level):
    n = intervals.min_rows(level)
    assert intervals.conformal_rank(n, level) <= n
    assert intervals.conformal_rank(n - 1, level) > n - 1 or n == 1
    assert n == max(1, math.ceil(level / (1 - level) - 1e-9))


def test_min_rows_at_the_usual_levels():
    assert (intervals.min_rows(0.9), intervals.min_rows(0.95)) == (9, 19)


def test_a_row_on_an_edge_goes_to_the_group_above_and_the_ends_extrapolate():
    edges = [5.0, 6.0, 7.0]
    rooms = np.array([-1.0, 4.99, 5.0, 5.5, 6.0, 6.999, 7.0, 12.0, 1e20])
    assert ig.group_of(rooms, edges).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 3]


def test_small_groups_merge_with_their_smaller_neighbour():
    # 3 rows: neighbours of 10 and 4 rows -> merged with the 4; then 7 rows between two 10s ->
    # the lower one (a tie).
    assert ig.merge_small([1.0, 2.0, 3.0], [10, 3, 4, 10], 9) == [3.0]
    assert ig.merge_small([1.0, 2.0, 3.0], [10, 3, 10, 10], 9) == [2.0, 3.0]
    # an end group can only merge inwards
    assert ig.merge_small([1.0, 2.0], [2, 10, 10], 9) == [2.0]
    assert ig.merge_small([1.0, 2.0], [10, 10, 2], 9) == [1.0]
    # groups big enough stay; too few rows in all: one group
    assert ig.merge_small([1.0, 2.0], [9, 9, 9], 9) == [1.0, 2.0]
    assert ig.merge_small([1.0, 2.0], [2, 2, 2], 9) == []
    with pytest.raises(ValueError):
        ig.merge_small([1.0], [1, 2, 3], 9)


def test_deciles_of_the_calibration_rows_with_ties_counted_once():
    x = np.arange(1, 101, dtype="float64")
    edges = ig.rooms_groups(x, 9)
    assert len(edges) == 9
    counts = np.bincount(ig.group_of(x, edges))
    assert counts.tolist() == [10] * 10
    # 50 equal values: their cut points count once, and every group keeps >= 9 rows
    tied = np.concatenate([np.full(50, 6.0), np.linspace(4, 9, 50)])
    edges = ig.rooms_groups(tied, 9)
    assert len(set(edges)) == len(edges) and edges == sorted(edges)
    assert min(np.bincount(ig.group_of(tied, edges))) >= 9


def test_groups_merge_until_each_has_the_rows_the_level_needs():
    x = np.random.default_rng(3).normal(6.3, 0.7, 122)
    for level in (0.9, 0.95, 0.99):
        edges = ig.rooms_groups(x, intervals.min_rows(level))
        counts = np.bincount(ig.group_of(x, edges), minlength=len(edges) + 1)
        assert counts.sum() == 122 and min(counts) >= intervals.min_rows(level), (level, counts)
    assert len(ig.rooms_groups(x, intervals.min_rows(0.9))) == 9  # ~12 rows a decile: no merge
    assert len(ig.rooms_groups(x, intervals.min_rows(0.99))) == 0  # 99 rows needed: one group


def _calibrated(level=0.9, groups="rooms_decile", n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(6.3, 0.7, n)
    noise = rng.normal(0, 1, n) * (1 + 3 * np.abs(x - 6.2))
    pred = 9 * x - 35
    return x, pred + noise, pred, intervals.calibrate(x, pred + noise, pred, level, groups=groups)


def test_each_group_has_its_own_conformal_quantile_of_its_rows():
    x, y, pred, params = _calibrated()
    g = params["groups"]
    assert g["by"] == "rooms_decile" and g["min_rows"] == 9 and len(g["groups"]) == 10
    which = ig.group_of(x, g["edges"])
    scores = np.abs(y - pred) / intervals.scale(x, params)
    for i, group in enumerate(g["groups"]):
        mine = np.sort(scores[which == i])
        assert group["rows"] == len(mine)
        assert group["quantile_rank"] == intervals.conformal_rank(len(mine), 0.9)
        assert group["quantile"] == mine[group["quantile_rank"] - 1] and group["guaranteed"]
    assert [grp["rooms_from"] for grp in g["groups"]] == [None, *g["edges"]]
    assert [grp["rooms_to"] for grp in g["groups"]] == [*g["edges"], None]
    # each row's band uses its group's quantile; the global quantile stays as it was
    low, high = intervals.band(x, pred, params)
    q = np.array([grp["quantile"] for grp in g["groups"]])[which]
    half = (q * intervals.scale(x, params)).astype("float32")
    assert np.array_equal(high, pred.astype("float32") + half)
    assert params["quantile"] == intervals.calibrate(x, y, pred, 0.9)["quantile"]


def test_groups_none_is_the_global_band_unchanged():
    x, y, pred, params = _calibrated(groups="none")
    assert "groups" not in params
    assert params == intervals.calibrate(x, y, pred, 0.9)
    with pytest.raises(ValueError, match="unknown interval groups"):
        intervals.calibrate(x, y, pred, 0.9, groups="bogus")


def test_per_group_coverage_holds_in_every_group_on_average():
    """Mondrian split conformal: within each group, coverage >= level on average over seeds."""
    inside = np.zeros(10)
    for seed in range(200):
        x, y, pred, params = _calibrated(seed=seed)
        rng = np.random.default_rng(10_000 + seed)
        xt = rng.normal(6.3, 0.7, 2000)
        pt = 9 * xt - 35
        yt = pt + rng.normal(0, 1, 2000) * (1 + 3 * np.abs(xt - 6.2))
        low, high = intervals.band(xt, pt, params)
        which = ig.group_of(xt, params["groups"]["edges"])
        ok = (yt >= low) & (yt <= high)
        inside += [ok[which == g].mean() for g in range(10)]
    assert (inside / 200 >= 0.89).all(), inside / 200


# -- the metadata ---------------------------------------------------------------------------------


def _interval(params):
    return {
        **params,
        "lower_bound": 0.0,
        "calibration_source": "validation",
        "test_coverage": 0.9,
        "test_rows": 102,
        "test_mean_width": 20.0,
    }


def test_metadata_with_groups_round_trips():
    *_, params = _calibrated()
    meta = fake_metadata(interval=_interval(params))
    text = dump(meta)
    again = parse_metadata(text, "models/v1/metadata.json")
    assert again == meta and dump(again) == text
    assert json.loads(text)["interval"]["groups"]["edges"] == params["groups"]["edges"]


def test_metadata_without_groups_reads_as_none_and_is_written_as_before():
    *_, params = _calibrated(groups="none")
    meta = fake_metadata(interval=_interval(params))
    text = dump(meta)
    assert '"groups"' not in text
    again = parse_metadata(text, "models/v1/metadata.json")
    assert again.interval.groups is None and dump(again) == text


@pytest.mark.parametrize(
    "change, words",
    [
        ({"edges": [7.0, 6.0]}, "edges must be strictly ascending"),
        ({"edges": [6.0]}, "must hold one group more than edges"),
        ({"by": "bogus"}, "interval.groups.by"),
    ],
)
def test_damaged_groups_are_refused_naming_the_field(change, words):
    *_, params = _calibrated()
    groups = {**params["groups"], "groups": params["groups"]["groups"][:3]}
    groups["edges"] = groups["edges"][:2]
    text = dump(fake_metadata(interval=_interval({**params, "groups": groups})))
    doc = json.loads(text)
    doc["interval"]["groups"].update(change)
    with pytest.raises(ValueError, match=words):
        parse_metadata(json.dumps(doc), "models/v1/metadata.json")
