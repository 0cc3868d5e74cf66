"""Shadow scoring (--challenger) and promote --require-shadow, through the real CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from tests.helpers import FAST_FIT, REPO, assert_failed, one_error_sentence, run_main
from tests.scoring_helpers import predictions, run_dir, score

SAMPLES = REPO / "sample_inputs"
MAIN = ["predicted_median_price_k", "predicted_low_k", "predicted_high_k"]
CHALLENGER = ["challenger_" + c for c in MAIN]
DASK = ["--engine", "dask", "--dask-workers", 1]


@pytest.fixture(scope="module")
def with_v2(trained, tmp_path_factory):
    """The session's registry (v1 = production) plus v2, a quick 3-epoch fit, not promoted."""
    from jobs.train import main

    models = tmp_path_factory.mktemp("shadow") / "models"
    shutil.copytree(trained["models"], models)
    res = run_main(main, ["--models-dir", models, *FAST_FIT, "--no-promote"])
    assert res.code == 0 and res.json["version"] == "v2", res.stderr[-3000:]
    return models


@pytest.fixture
def two(with_v2, tmp_path):
    """A private copy of the two-version registry that a test may change."""
    dest = tmp_path / "models"
    shutil.copytree(with_v2, dest)
    return dest


def report_of(folder):
    return json.loads((folder / "report.json").read_text())


def runs_lines(out):
    return [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]


def test_a_challenger_equal_to_production_repeats_the_main_columns(models, tmp_path):
    res = score(models, tmp_path / "out", SAMPLES, extra=["--challenger", "production"])
    folder = run_dir(res)
    df = predictions(folder)
    for main, shadow in zip(MAIN, CHALLENGER):
        assert df[shadow].dtype == np.float32
        pd.testing.assert_series_equal(df[main], df[shadow], check_names=False)
    assert set(df["challenger_model_version"]) == {"v1"}
    csv = pd.read_csv(folder / "predictions.csv")
    assert list(csv.columns[-4:]) == [*CHALLENGER, "challenger_model_version"]
    c = report_of(folder)["challenger"]
    assert c["version"] == "v1" and c["rows"] == len(df)
    assert c["mean_abs_diff"] == 0 and c["max_abs_diff"] == 0 and c["bands_apart"] == 0
    assert c["mse"] == c["challenger_mse"] and c["mae"] == c["challenger_mae"]
    assert c["estimated_mae"] == c["challenger_estimated_mae"] is not None
    line = runs_lines(tmp_path / "out")[-1]
    assert line["challenger"]["version"] == "v1" and line["challenger"]["mean_abs_diff"] == 0
    assert "Challenger v1" in (folder / "report.html").read_text()


def test_without_a_challenger_nothing_changes(models, tmp_path):
    folder = run_dir(score(models, tmp_path / "out", SAMPLES))
    assert not any(c.startswith("challenger_") for c in predictions(folder).columns)
    assert report_of(folder).get("challenger") is None
    assert runs_lines(tmp_path / "out")[-1].get("challenger") is None


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_report_matches_a_recomputation_from_the_predictions(two, tmp_path, engine):
    extra = ["--challenger", "v2", "--max-reject-fraction", 1]
    res = score(two, tmp_path / "out", SAMPLES, extra=extra + (DASK if engine == "dask" else []))
    folder = run_dir(res)
    df = predictions(folder)
    csv = pd.read_csv(folder / "predictions.csv")
    assert np.allclose(csv["challenger_predicted_median_price_k"], df[CHALLENGER[0]], atol=1e-3)
    assert set(df["challenger_model_version"]) == {"v2"} and set(df["model_version"]) == {"v1"}
    main, shadow = (df[c].astype("float64") for c in (MAIN[0], CHALLENGER[0]))
    diff = (shadow - main).abs()
    apart = (df[CHALLENGER[1]] > df[MAIN[2]]) | (df[MAIN[1]] > df[CHALLENGER[2]])
    has = df["target_used"].notna()
    y = df.loc[has, "target_used"]
    c = report_of(folder)["challenger"]
    approx = lambda x: pytest.approx(float(x), rel=1e-5)  # noqa: E731 (7 digits in the report)
    assert c["version"] == "v2" and c["rows"] == len(df) and c["true_price_rows"] == has.sum()
    assert c["mean_abs_diff"] == approx(diff.mean()) and c["max_abs_diff"] == approx(diff.max())
    assert c["mean_abs_diff"] > 0
    assert c["bands_apart"] == approx(apart.mean())
    assert c["mse"] == approx(((main[has] - y) ** 2).mean())
    assert c["mae"] == approx((main[has] - y).abs().mean())
    assert c["challenger_mse"] == approx(((shadow[has] - y) ** 2).mean())
    assert c["challenger_mae"] == approx((shadow[has] - y).abs().mean())
    rep = report_of(folder)
    assert c["mse"] == approx(rep["metrics"]["mse"])
    assert c["estimated_mae"] == rep["estimate"]["estimated_mae"]
    assert c["challenger_estimated_mae"] not in (None, c["estimated_mae"])


def test_an_unknown_challenger_stops_the_run_like_an_unknown_model_version(models, tmp_path):
    res = score(models, tmp_path / "out", SAMPLES, extra=["--challenger", "v9"])
    assert_failed(res, 4, "'v9'", "no model version or alias")
    assert not (tmp_path / "out" / "runs").exists() or not any(
        (tmp_path / "out" / "runs").iterdir()
    )
    same = score(models, tmp_path / "out", SAMPLES, extra=["--model-version", "v9"])
    assert one_error_sentence(same.stderr) == one_error_sentence(res.stderr)


def promote(models, out, *extra, version="v2"):
    from jobs.models import main

    return run_main(main, ["promote", version, "--models-dir", models, "--output-dir", out, *extra])


def test_promote_requires_enough_shadow_runs(two, tmp_path, write_csv):
    # Inputs without a true price: no MSE to compare, only the runs count.
    unlabelled = write_csv("rooms.csv", "rm\n6.1\n5.9\n7.2\n6.6\n")
    out = tmp_path / "out"
    for _ in range(2):
        run_dir(score(two, out, unlabelled, extra=["--challenger", "v2"]))
    score(two, out, tmp_path / "missing.csv", extra=["--challenger", "v2"])  # exit 3: not counted
    refused = promote(two, out, "--require-shadow", 3)
    assert refused.code == 4, refused.stderr[-2000:]
    sentence = one_error_sentence(refused.stderr)
    assert "v2 is not promoted" in sentence and "2 of the 3" in sentence, sentence
    assert json.loads((two / "aliases.json").read_text())["production"] == "v1"
    run_dir(score(two, out, unlabelled, extra=["--challenger", "v2"]))
    accepted = promote(two, out, "--require-shadow", 3)
    assert accepted.code == 0, accepted.stderr[-2000:]
    assert "production: v1 -> v2" in accepted.stdout


def test_promote_refuses_a_challenger_that_did_worse_on_labelled_runs(two, tmp_path):
    # On the sample inputs the quick v2 happens to beat the session's v1: make v2 production
    # and let v1 shadow it.
    out = tmp_path / "out"
    assert promote(two, out).code == 0
    ids = []
    for _ in range(2):
        folder = run_dir(score(two, out, SAMPLES, extra=["--challenger", "v1"]))
        c = report_of(folder)["challenger"]
        assert c["challenger_mse"] > c["mse"], c
        ids.append(folder.name)
    refused = promote(two, out, "--require-shadow", 2, version="v1")
    assert refused.code == 4, refused.stderr[-2000:]
    sentence = one_error_sentence(refused.stderr)
    assert "v1 is not promoted" in sentence and "MSE was worse" in sentence, sentence
    assert all(i in sentence for i in ids), sentence
    assert json.loads((two / "aliases.json").read_text())["production"] == "v2"
    # Without --require-shadow promote is what it was.
    assert promote(two, out, version="v1").code == 0


def test_an_input_column_named_like_a_challenger_column_is_refused(models, tmp_path, write_csv):
    clash = write_csv("clash.csv", "rm,Challenger_Model_Version\n6.1,x\n")
    res = score(models, tmp_path / "out", clash, extra=["--challenger", "v1"])
    assert_failed(res, 3, "'Challenger_Model_Version'", "--challenger")
    assert run_dir(score(models, tmp_path / "out", clash))  # without a challenger: as before


def test_the_scheduler_passes_the_challenger_on(settings):
    from batch.schedule.runner import scorer_command

    cmd = scorer_command(settings(challenger="v2"))
    assert cmd[cmd.index("--challenger") + 1] == "v2"
    assert "--challenger" not in scorer_command(settings())


def test_a_damaged_challenger_stops_the_run_like_a_damaged_model_version(two, tmp_path):
    (two / "v2" / "metadata.json").write_text("{not json")
    res = score(two, tmp_path / "out", SAMPLES, extra=["--challenger", "v2"])
    sentence = assert_failed(res, 4, "v2", "metadata.json")
    same = score(two, tmp_path / "out", SAMPLES, extra=["--model-version", "v2"])
    assert one_error_sentence(same.stderr) == sentence
    assert not (tmp_path / "out" / "runs").is_dir() or not any(
        (tmp_path / "out" / "runs").iterdir()
    )


def test_a_challenger_of_none_is_off_like_an_unset_one(settings):
    assert settings(challenger="none").challenger is None
    assert settings(challenger="None").challenger is None
    assert settings(challenger=" ").challenger is None
    assert settings(challenger="v2").challenger == "v2"


def test_promote_weighs_labels_joined_later_for_shadow_runs_without_true_prices(two, tmp_path):
    """Inputs without their prices; the prices arrive later through jobs.labels: the labels
    result holds both versions' errors, and promote --require-shadow refuses on them."""
    from jobs.labels import main as labels_main

    out = tmp_path / "out"
    assert promote(two, out).code == 0  # v2 leads; v1 (worse on these suburbs) shadows it
    sample = pd.read_csv(SAMPLES / "suburbs_north.csv")
    priced = sample.dropna(subset=["medv"])
    unpriced = tmp_path / "tonight.csv"
    priced.drop(columns=["medv"]).to_csv(unpriced, index=False)
    ids = [run_dir(score(two, out, unpriced, extra=["--challenger", "v1"])).name for _ in "ab"]
    assert all(line["challenger"]["mse"] is None for line in runs_lines(out)[-2:])
    labels = tmp_path / "sold.csv"
    priced[["suburb_id", "medv"]].to_csv(labels, index=False)
    res = run_main(labels_main, ["--output-dir", out, "--key", "suburb_id", labels])
    assert res.code == 0, res.stderr[-3000:]
    result = json.loads((out / "labels" / f"{ids[0]}.json").read_text())
    c = result["challenger"]
    both = predictions(out / "runs" / ids[0]).merge(priced[["suburb_id", "medv"]], on="suburb_id")
    assert c["version"] == "v1" and c["rows"] == len(both) == result["rows_labelled"]
    main_err = both["predicted_median_price_k"].to_numpy("float64") - both["medv"]
    shadow_err = both["challenger_predicted_median_price_k"].to_numpy("float64") - both["medv"]
    assert c["main_mse"] == pytest.approx(np.mean(main_err**2), rel=1e-5)
    assert c["mse"] == pytest.approx(np.mean(shadow_err**2), rel=1e-5)
    assert c["mae"] == pytest.approx(np.mean(np.abs(shadow_err)), rel=1e-5)
    assert c["mse"] > c["main_mse"]
    refused = promote(two, out, "--require-shadow", 2, version="v1")
    assert refused.code == 4, refused.stderr[-2000:]
    sentence = one_error_sentence(refused.stderr)
    assert "MSE was worse" in sentence and f"{ids[0]} (labels)" in sentence, sentence
    assert json.loads((two / "aliases.json").read_text())["production"] == "v2"
