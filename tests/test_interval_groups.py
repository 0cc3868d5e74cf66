"""The price band calibrated per rooms group (--interval-groups rooms_decile): the grouping rule,
the metadata it writes, and the scorer, report and labels using each row's group."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from batch.core import interval_groups as ig
from batch.core import intervals
from batch.core.documents import parse_metadata
from batch.core.documents._base import dump
from tests.helpers import FAST_FIT, assert_failed, run_cli
from tests.model_helpers import fake_metadata
from tests.scoring_helpers import predictions, run_dir, score

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
    rooms = np.array([-1e300, -1.0, 4.99, 5.0, 5.5, 6.0, 6.999, 7.0, 12.0, 1e20, 1e300])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ig.group_of(rooms, edges).tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3, 3, 3]


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


def test_edges_are_calibration_values_and_no_row_changes_group():
    x = np.random.default_rng(5).normal(6.3, 0.7, 122).astype("float32").astype("float64")
    cuts = ig.decile_cuts(x)
    edges = ig.rooms_groups(x, 9)
    assert np.array_equal(ig.group_of(x, edges), ig.group_of(x, cuts))
    assert all(float(np.float32(e)) in set(x.tolist()) for e in edges)
    # a scored row given as the edge's decimal text lands in the group above, as its row did
    assert ig.group_of([float(str(np.float32(edges[3])))], edges).tolist() == [4]


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


# -- through the real commands --------------------------------------------------------------------


@pytest.fixture(scope="module")
def grouped(tmp_path_factory) -> dict:
    """A quick training with --interval-groups rooms_decile, and the Boston test rows (with
    rooms beyond both ends of the training range) scored by both engines."""
    from batch.model import datasets

    base = tmp_path_factory.mktemp("groups")
    models = base / "models"
    trained = run_cli(
        "jobs.train", "--models-dir", models, *FAST_FIT, "--interval-groups", "rooms_decile"
    )
    assert trained.code == 0, trained.stderr[-3000:]
    data = datasets.load_boston()
    rooms = np.concatenate([data.x_test.astype("float64"), [1.0, 3.0, 9.5, 15.0]])
    prices = np.concatenate([data.y_test.astype("float64"), [5.0, 10.0, 50.0, 50.0]])
    path = base / "in" / "rows.csv"
    path.parent.mkdir()
    path.write_text(
        "id,rm,medv\n"
        + "".join(
            f"{i},{np.float32(r)},{np.float32(p)}\n" for i, (r, p) in enumerate(zip(rooms, prices))
        )
    )
    runs = {}
    for engine, extra in {"local": (), "dask": ("--engine", "dask", "--dask-workers", 2)}.items():
        res = score(models, base / f"out-{engine}", path, extra=extra, subprocess=True)
        runs[engine] = run_dir(res)
    labels = base / "labels.csv"
    labels.write_text("id,medv\n" + "".join(f"{i},{np.float32(p)}\n" for i, p in enumerate(prices)))
    return {"models": models, "summary": trained.json, "runs": runs, "labels": labels, "base": base}


def _meta(grouped) -> dict:
    return json.loads((grouped["models"] / "v1" / "metadata.json").read_text())


def test_train_publishes_the_groups_and_says_so(grouped):
    band = _meta(grouped)["interval"]
    groups = band["groups"]
    assert grouped["summary"]["interval"]["groups"] == "rooms_decile"
    assert groups["by"] == "rooms_decile" and groups["min_rows"] == 9
    assert len(groups["groups"]) == len(groups["edges"]) + 1 >= 2
    assert sum(g["rows"] for g in groups["groups"]) == band["calibration_rows"] == 122
    assert all(g["rows"] >= 9 and g["guaranteed"] for g in groups["groups"])
    # and the metadata reads back as the document
    parse_metadata((grouped["models"] / "v1" / "metadata.json").read_text(), "v1")


def _expected_band(meta: dict, rooms: np.ndarray, pred: np.ndarray):
    band = meta["interval"]
    s = band["scale"]
    scale = np.maximum(
        s["intercept"]
        + s["slope_below"] * np.maximum(s["center"] - rooms, 0)
        + s["slope_above"] * np.maximum(rooms - s["center"], 0),
        s["floor"],
    )
    q = np.array([g["quantile"] for g in band["groups"]["groups"]])
    edges32 = np.asarray(band["groups"]["edges"], "float32")
    which = np.searchsorted(edges32, rooms.astype("float32"), side="right")
    half = (q[which] * scale).astype("float32")
    low = np.minimum(np.maximum(pred - half, np.float32(0)), pred)
    return low, pred + half, which


def test_each_scored_row_gets_the_band_of_its_group(grouped):
    meta = _meta(grouped)
    rows = predictions(grouped["runs"]["local"]).sort_values("source_row")
    rooms = rows["rooms_used"].to_numpy("float64")
    pred = rows["predicted_median_price_k"].to_numpy("float32")
    low, high, which = _expected_band(meta, rooms, pred)
    assert np.array_equal(rows["predicted_low_k"].to_numpy("float32"), low)
    assert np.array_equal(rows["predicted_high_k"].to_numpy("float32"), high)
    # rooms below the first edge and above the last use the end groups
    last = len(meta["interval"]["groups"]["groups"]) - 1
    assert which[rooms == 1.0].tolist() == [0] and which[rooms == 15.0].tolist() == [last]
    assert set(which.tolist()) == set(range(last + 1))


def test_the_report_shows_width_and_coverage_per_group(grouped):
    meta = _meta(grouped)
    folder = grouped["runs"]["local"]
    report = json.loads((folder / "report.json").read_text())
    found = report["interval"]["groups"]
    rows = predictions(folder)
    rooms = rows["rooms_used"].to_numpy("float64")
    edges32 = np.asarray(meta["interval"]["groups"]["edges"], "float32")
    which = np.searchsorted(edges32, rooms.astype("float32"), side="right")
    price = rows["target_used"].to_numpy("float64")
    inside = (price >= rows["predicted_low_k"]) & (price <= rows["predicted_high_k"])
    assert len(found) == len(meta["interval"]["groups"]["groups"])
    for i, group in enumerate(found):
        assert group["rows"] == group["rows_with_price"] == int((which == i).sum())
        assert group["coverage"] == pytest.approx(float(inside[which == i].mean()))
    assert found[0]["rooms_from"] is None and found[-1]["rooms_to"] is None
    edges = meta["interval"]["groups"]["edges"]
    assert [g["rooms_from"] for g in found[1:]] == pytest.approx(edges, rel=1e-6)
    # the edges are calibration rooms values, written as their float32's shortest decimals
    assert all(e == float(str(np.float32(e))) for e in meta["interval"]["groups"]["edges"])
    page = (folder / "report.html").read_text()
    assert "id='band-groups'" in page and f"{found[0]['coverage']:.0%}" in page


def test_both_engines_agree(grouped):
    local, dask = (
        predictions(grouped["runs"][e]).sort_values("source_row") for e in ("local", "dask")
    )
    for column in ("predicted_median_price_k", "predicted_low_k", "predicted_high_k"):
        assert np.array_equal(local[column].to_numpy(), dask[column].to_numpy()), column
    reports = [
        json.loads((grouped["runs"][e] / "report.json").read_text()) for e in ("local", "dask")
    ]
    assert reports[0]["interval"]["groups"] == reports[1]["interval"]["groups"]


def test_the_labels_results_show_coverage_per_group(grouped):
    out = grouped["runs"]["local"].parent.parent
    res = run_cli("jobs.labels", "--output-dir", out, "--key", "id", grouped["labels"])
    assert res.code == 0, res.stderr[-3000:]
    (result_file,) = (out / "labels").glob("*.json")
    result = json.loads(result_file.read_text())
    report = json.loads((grouped["runs"]["local"] / "report.json").read_text())
    by_report = report["interval"]["groups"]
    assert [(g["rooms_from"], g["rows"]) for g in result["groups"]] == [
        (g["rooms_from"], g["rows"]) for g in by_report
    ]
    assert [g["coverage"] for g in result["groups"]] == pytest.approx(
        [g["coverage"] for g in by_report]
    )


def test_a_global_band_writes_no_groups(models, tmp_path):
    """The default (none): metadata, report and labels results carry no groups field."""
    meta = (models / "v1" / "metadata.json").read_text()
    assert '"groups"' not in meta
    frame = "rm,medv\n6.0,20.0\n7.0,30.0\n"
    (tmp_path / "in.csv").write_text(frame)
    folder = run_dir(score(models, tmp_path / "out", tmp_path / "in.csv"))
    assert '"groups"' not in (folder / "report.json").read_text()


def test_an_unknown_grouping_exits_2_in_one_sentence(tmp_path):
    res = run_cli("jobs.train", "--models-dir", tmp_path / "m", "--interval-groups", "bogus")
    sentence = assert_failed(res, 2, "interval")
    assert "none" in sentence and "rooms_decile" in sentence, sentence
    assert not (tmp_path / "m" / "v1").exists()
