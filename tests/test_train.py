"""Training: both data sources, determinism, the tutorial's fidelity table, outputs and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from batch.core.errors import InputError
from batch.model import datasets
from batch.model.registry import Registry
from tests.helpers import BOSTON_CSV, FAST_FIT, REPO, one_error_sentence, run_cli, run_main

TUTORIAL = {3: 11.4, 4: 14.7, 5: 18.0, 6: 21.4, 7: 24.7}


def test_boston_from_keras_has_the_tutorials_split():
    data = datasets.load_boston()
    assert (len(data.x_train), len(data.x_test)) == (404, 102)
    assert data.x_train[0] == pytest.approx(6.142) and data.y_train[0] == pytest.approx(15.2)
    assert data.sha256.startswith("f553886a")


def test_boston_csv_file_gives_the_same_split_as_keras():
    keras_data = datasets.load_boston()
    file_data = datasets.load(f"{BOSTON_CSV}")
    np.testing.assert_array_equal(file_data.x_train, keras_data.x_train)
    np.testing.assert_array_equal(file_data.y_test, keras_data.y_test)


def test_file_columns_match_case_insensitively_and_can_be_overridden(tmp_path):
    frame = pd.read_csv(BOSTON_CSV)
    upper = tmp_path / "upper.parquet"
    frame.rename(columns={"rm": " RM ", "medv": "MEDV"}).to_parquet(upper)
    assert datasets.load(str(upper)).x_train[0] == pytest.approx(6.142)
    custom = tmp_path / "custom.csv"
    frame.rename(columns={"rm": "rooms_avg", "medv": "price"}).to_csv(custom, index=False)
    data = datasets.load(str(custom), feature_column="rooms_avg", target_column="PRICE")
    assert data.y_train[0] == pytest.approx(15.2)
    with pytest.raises(InputError, match="no price"):
        datasets.load(str(custom), feature_column="rooms_avg")
    with pytest.raises(InputError, match="no rooms"):
        datasets.load(str(custom), target_column="price")


def test_bad_training_rows_are_dropped_and_counted(tmp_path):
    frame = pd.read_csv(BOSTON_CSV)[["rm", "medv"]].astype(object)
    frame.loc[0, "rm"] = "n/a"
    frame.loc[1, "medv"] = None
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    data = datasets.load(str(path))
    assert data.rows_dropped == 2
    assert len(data.x_train) + len(data.x_test) == 504


def test_fidelity_with_the_tutorial(trained):
    """The session's real 101-epoch fit reproduces the tutorial's table."""
    registry = Registry(trained["models"])
    model, meta = registry.load("production")
    from batch.model.network import predict

    preds = predict(model, list(TUTORIAL))
    for (rooms, expected), got in zip(TUTORIAL.items(), preds):
        assert abs(got - expected) <= 0.5, (rooms, got)
    assert meta.metrics.loss == pytest.approx(54.56, rel=0.03)
    assert meta.metrics.val_loss == pytest.approx(75.02, rel=0.03)
    assert meta.hyperparameters.model_dump() == {
        "optimizer": "rmsprop",
        "learning_rate": 0.005,
        "epochs": 101,
        "batch_size": 16,
        "validation_split": 0.3,
        "seed": 42,
    }


def test_version_has_every_contract_file_and_field(trained):
    v1 = trained["models"] / "v1"
    assert sorted(p.name for p in v1.iterdir()) == [
        "fit.png",
        "history.csv",
        "loss.png",
        "metadata.json",
        "model.keras",
    ]
    for png in ("fit.png", "loss.png"):
        assert (v1 / png).read_bytes().startswith(b"\x89PNG")
    meta = json.loads((v1 / "metadata.json").read_text())
    for key in (
        "version",
        "created_at",
        "feature",
        "target",
        "weight",
        "bias",
        "hyperparameters",
        "data",
        "metrics",
        "ols_reference",
        "feature_range",
        "versions",
        "model_sha256",
    ):
        assert key in meta, key
    assert meta["version"] == "v1" and meta["feature"] == "rm" and meta["target"] == "medv"
    assert meta["created_at"].endswith("+00:00")
    assert set(meta["data"]) >= {"source", "sha256", "rows_train", "rows_val", "rows_test"}
    assert (meta["data"]["rows_train"], meta["data"]["rows_val"], meta["data"]["rows_test"]) == (
        282,
        122,
        102,
    )  # Keras 3 fits on floor(404 * 0.7) rows
    assert set(meta["metrics"]) == {"loss", "val_loss", "test_mse", "test_mae"}
    assert set(meta["versions"]) == {"python", "tensorflow", "keras"}
    history = pd.read_csv(v1 / "history.csv")
    assert list(history.columns) == ["epoch", "loss", "val_loss"] and len(history) == 101
    assert history["loss"].iloc[-1] == pytest.approx(meta["metrics"]["loss"])


def test_ols_reference_is_the_least_squares_line(trained):
    meta = Registry(trained["models"]).metadata("v1")
    data = datasets.load_boston()
    slope, intercept = np.polyfit(data.x_train.astype("float64"), data.y_train.astype("float64"), 1)
    assert meta.ols_reference.slope == pytest.approx(slope)
    assert meta.ols_reference.intercept == pytest.approx(intercept)
    # Gradient descent after 101 epochs is not at the optimum; the reference shows by how much.
    assert meta.ols_reference.test_mse < meta.metrics.test_mse


def test_training_summary_is_the_last_stdout_line(trained):
    summary = trained["summary"]
    assert summary["version"] == "v1" and summary["promoted"] is True
    assert summary["status"] == "succeeded"
    assert set(summary["metrics"]) == {"loss", "val_loss", "test_mse", "test_mae"}


def test_training_is_deterministic_bit_for_bit(tmp_path):
    """Same data and seed twice (short fits): identical weights to the last bit."""
    from jobs.train import main

    weights = []
    for run in ("a", "b"):
        res = run_main(main, ["--models-dir", tmp_path / run, *FAST_FIT])
        assert res.code == 0, res.stderr
        model, _ = Registry(tmp_path / run).load("v1")
        weights.append([w.tobytes() for w in model.get_weights()])
    assert weights[0] == weights[1]
    res = run_main(main, ["--models-dir", tmp_path / "c", *FAST_FIT, "--seed", 7])
    assert res.code == 0, res.stderr
    model, _ = Registry(tmp_path / "c").load("v1")
    assert [w.tobytes() for w in model.get_weights()] != weights[0]


def test_train_subprocess_is_quiet_and_prints_json_last(tmp_path):
    res = run_cli("jobs.train", "--models-dir", tmp_path / "m", *FAST_FIT, "--log-every-epochs", 1)
    assert res.code == 0, res.stderr
    assert res.json["version"] == "v1"
    assert len(res.stdout.strip().splitlines()) == 1
    for noise in (
        "oneDNN",
        "cuda",
        "TensorFlow binary is optimized",
        "absl",
        "I0000",
        "computation placer",
        "Unable to register",
    ):
        assert noise not in res.stderr, noise
    assert res.stderr.count("epoch ") == 3  # one log line per epoch when asked (not a terminal)


def test_train_on_a_file(tmp_path):
    res = run_cli("jobs.train", "--models-dir", tmp_path / "m", *FAST_FIT, "--data", BOSTON_CSV)
    assert res.code == 0, res.stderr
    meta = Registry(tmp_path / "m").metadata("v1")
    assert meta.data.source == str(BOSTON_CSV)


def test_train_exit_3_for_missing_data_file(tmp_path):
    res = run_cli("jobs.train", "--models-dir", tmp_path / "m", "--data", tmp_path / "nope.csv")
    assert res.code == 3
    assert "nope.csv" in one_error_sentence(res.stderr)
    assert res.json["status"] == "failed"


def test_train_offline_without_cache_exit_3_says_where_to_put_the_file(tmp_path):
    empty_home = tmp_path / "keras"
    empty_home.mkdir()
    res = run_cli(
        "jobs.train",
        "--models-dir",
        tmp_path / "m",
        env={"KERAS_HOME": str(empty_home)},
        timeout=120,
    )
    if res.code == 0:
        pytest.skip("this machine can download Boston Housing, so the offline path cannot be shown")
    assert res.code == 3
    line = one_error_sentence(res.stderr)
    assert str(empty_home / "datasets" / "boston_housing.npz") in line
    assert "KERAS_HOME" in line and "--data" in line


def test_train_exit_4_for_a_damaged_registry(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "aliases.json").write_text("{not json")
    res = run_cli("jobs.train", "--models-dir", tmp_path / "m", "--if-missing")
    assert res.code == 4
    assert "aliases.json" in one_error_sentence(res.stderr)


def test_if_missing_skips_when_production_exists(models):
    res = run_cli("jobs.train", "--models-dir", models, "--if-missing")
    assert res.code == 0
    assert res.json["status"] == "skipped" and res.json["version"] == "v1"
    assert Registry(models).versions() == ["v1"]


def test_help_does_not_import_tensorflow():
    code = (
        "import sys; from jobs import train, score, schedule, models\n"
        "for m in (train, score, schedule, models):\n"
        "    try: m.main(['--help'])\n"
        "    except SystemExit: pass\n"
        "bad = [n for n in ('tensorflow', 'keras', 'pandas', 'matplotlib') if n in sys.modules]\n"
        "print('IMPORTED', bad, file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert "IMPORTED []" in proc.stderr, proc.stderr
    assert "usage: python -m jobs.train" in proc.stdout


def test_a_diverged_training_is_not_published(tmp_path):
    res = run_cli(
        "jobs.train",
        "--models-dir",
        tmp_path / "m",
        "--optimizer",
        "sgd",
        "--learning-rate",
        1000,
        "--epochs",
        3,
    )
    assert res.code == 4
    line = one_error_sentence(res.stderr)
    assert "diverged" in line and "--learning-rate" in line
    assert Registry(tmp_path / "m").versions() == []


def test_a_finite_but_useless_fit_is_not_published_and_names_the_cause(tmp_path):
    """Learning rate 1000 (RMSprop) stays finite but is far worse than the mean: exit 4,
    nothing published, nothing promoted, even on an empty registry."""
    res = run_cli(
        "jobs.train", "--models-dir", tmp_path / "m", "--learning-rate", 1000, "--epochs", 3
    )
    assert res.code == 4
    line = one_error_sentence(res.stderr)
    assert "no better than predicting the mean" in line and "--learning-rate 1000" in line
    assert res.json["status"] == "failed" and res.json["exit_code"] == 4
    assert res.json["test_mse"] > res.json["baseline_mse"]
    registry = Registry(tmp_path / "m")
    assert registry.versions() == [] and registry.aliases() == {} and registry.history() == []


def test_too_few_epochs_names_epochs(tmp_path):
    res = run_cli("jobs.train", "--models-dir", tmp_path / "m", "--epochs", 2)
    assert res.code == 4
    assert "raise --epochs (now 2)" in one_error_sentence(res.stderr)


def test_the_sessions_model_records_baseline_band_and_first_move(trained):
    registry = Registry(trained["models"])
    meta = registry.metadata("v1")
    assert meta.baseline_mse == pytest.approx(83.71, rel=1e-3)
    assert meta.metrics.test_mse < 0.9 * meta.baseline_mse
    assert meta.interval is not None
    band = meta.interval.model_dump()
    assert (band["method"], band["level"]) == ("split-conformal, locally scaled", 0.9)
    assert (band["calibration_source"], band["calibration_rows"]) == ("validation", 122)
    assert band["scale_rows"] == "separate" and band["guaranteed"] is True
    assert band["test_rows"] == 102 and 0.8 <= band["test_coverage"] <= 0.98
    summary = trained["summary"]
    assert summary["interval"] == {
        "level": 0.9,
        "test_coverage": band["test_coverage"],
        "groups": "none",
    }
    assert summary["evaluated_on"]["sha256"] == meta.data.sha256
    (event,) = registry.history()
    assert (event.from_, event.to, event.command) == (None, "v1", "train (quality gate)")


def test_the_band_contains_every_prediction_and_its_share_of_test_prices(trained):
    from batch.core import intervals
    from batch.model.network import predict

    model, meta = Registry(trained["models"]).load("v1")
    data = datasets.load_boston()
    pred = predict(model, data.x_test)
    assert meta.interval is not None
    low, high = intervals.band(data.x_test, pred, meta.interval.model_dump())
    assert np.all(low <= pred) and np.all(pred <= high)
    assert intervals.coverage(data.y_test, low, high) == pytest.approx(meta.interval.test_coverage)


def test_interval_level_setting_reaches_the_metadata(tmp_path):
    from jobs.train import main

    res = run_main(main, ["--models-dir", tmp_path / "m", *FAST_FIT, "--interval-level", 0.5])
    assert res.code == 0, res.stderr
    meta = Registry(tmp_path / "m").metadata("v1")
    assert meta.interval is not None
    assert meta.interval.level == 0.5 and meta.interval.quantile_rank == 62
    res = run_cli("jobs.train", "--models-dir", tmp_path / "m", "--interval-level", 1.5)
    assert res.code == 2 and "--interval-level" in one_error_sentence(res.stderr)


def test_a_retrain_that_ties_is_promoted(tmp_path):
    """Training is deterministic: the same data and settings give the same MSE on the same rows."""
    from jobs.train import main

    for _ in range(2):
        res = run_main(main, ["--models-dir", tmp_path / "m", *FAST_FIT])
        assert res.code == 0, res.stderr
    summary = res.json
    assert summary["version"] == "v2" and summary["promoted"] is True
    assert summary["test_mse"] == summary["production_test_mse"]
    assert "at least as good as production v1" in summary["reason"]


def test_a_worse_retrain_is_published_but_not_promoted(models):
    from jobs.train import main

    res = run_main(main, ["--models-dir", models, "--epochs", 2, "--learning-rate", 0.05])
    assert res.code == 0, res.stderr
    summary = res.json
    assert summary["version"] == "v2" and summary["promoted"] is False
    registry = Registry(models)
    v1 = registry.metadata("v1")
    # Same data, so production's MSE on the candidate's rows is its own recorded test MSE.
    assert summary["production_test_mse"] == pytest.approx(v1.metrics.test_mse, rel=1e-6)
    assert summary["production_test_mse"] < summary["test_mse"] < 0.9 * summary["baseline_mse"]
    assert "worse than production v1" in summary["reason"]
    assert registry.versions() == ["v1", "v2"] and registry.resolve("production") == "v1"
    assert len(registry.history()) == 1  # no move


def test_a_candidate_on_other_data_is_compared_on_its_own_rows(models, tmp_path):
    """Production (trained on Boston) is loaded and scored on the candidate's test rows."""
    rng = np.random.default_rng(5)
    rooms = rng.uniform(4, 8.5, 400)
    path = tmp_path / "other.csv"
    pd.DataFrame({"rm": rooms, "medv": 5.5 * rooms - 12 + rng.normal(0, 2, 400)}).to_csv(
        path, index=False
    )
    res = run_cli(
        "jobs.train", "--models-dir", models, "--data", path, "--epochs", 20, "--learning-rate", 0.1
    )
    assert res.code == 0, res.stderr
    summary = res.json
    assert summary["evaluated_on"] == {
        "source": str(path),
        "sha256": datasets.sha256_file(path),
        "rows": 80,
        "split": "test",
    }
    v1 = Registry(models).metadata("v1")
    other = datasets.load(str(path))
    expected = np.mean(
        (
            np.float32(v1.weight) * other.x_test
            + np.float32(v1.bias)
            - other.y_test.astype("float64")
        )
        ** 2
    )
    assert summary["production_test_mse"] == pytest.approx(expected, rel=1e-5)
    assert summary["production_test_mse"] != pytest.approx(v1.metrics.test_mse, rel=0.05)
    assert "training data differs from production v1's" in res.stderr
    assert summary["promoted"] is (summary["test_mse"] <= summary["production_test_mse"])
    event = Registry(models).history()[-1]
    if summary["promoted"]:
        assert event.to_mse == summary["test_mse"] and str(path) in (event.mse_on or "")
