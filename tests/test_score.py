"""The scorer end to end: rejects, budget, --new-only, lock, atomicity, report, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.model.registry import Registry
from tests.helpers import REPO, kill_when, one_error_sentence, run_cli
from tests.scoring_helpers import predictions, rejects, run_dir, score

CONTRACT_COLUMNS = [
    "source_file",
    "source_row",
    "predicted_median_price_k",
    "predicted_low_k",
    "predicted_high_k",
    "out_of_range",
    "model_version",
    "run_id",
    "rooms_used",
    "target_used",
]


def mixed_csv(write_csv, name="mixed.csv"):
    return write_csv(
        name,
        "suburb,rm,medv\n"
        "ok,6.5,25\n"
        "empty,,\n"
        "text,six,\n"
        "nan,NaN,\n"
        "inf,inf,\n"
        "zero,0,\n"
        "huge,25,\n"
        "big,9.5,40\n"
        "small,3.0,\n",
    )


def test_every_row_is_scored_or_rejected_with_its_reason(models, tmp_path, write_csv):
    path = mixed_csv(write_csv)
    res = score(models, tmp_path / "out", path, extra=["--max-reject-fraction", 1])
    folder = run_dir(res)
    got = predictions(folder)
    assert got["suburb"].tolist() == ["ok", "big", "small"]
    assert got["source_row"].tolist() == [1, 8, 9]
    assert got["out_of_range"].tolist() == [False, True, True]  # 9.5 and 3.0 outside 3.56-8.73
    assert list(got.columns[-len(CONTRACT_COLUMNS) :]) == CONTRACT_COLUMNS
    assert set(got["model_version"]) == {"v1"} and set(got["run_id"]) == {res.json["run_id"]}
    rej = rejects(folder)
    assert list(rej.columns) == ["source_file", "source_row", "raw_value", "reason"]
    assert rej[["source_row", "raw_value", "reason"]].values.tolist() == [
        [2, "", "missing"],
        [3, "six", "not_a_number"],
        [4, "NaN", "non_finite"],
        [5, "inf", "non_finite"],
        [6, "0", "out_of_domain"],
        [7, "25", "out_of_domain"],
    ]
    report = json.loads((folder / "report.json").read_text())
    assert report["rejects_by_reason"] == {
        "missing": 1,
        "not_a_number": 1,
        "non_finite": 2,
        "out_of_domain": 2,
    }
    assert report["rows_scored"] + report["rows_rejected"] == 9
    assert report["out_of_range"]["rows"] == 2


def test_domain_is_configurable(models, tmp_path, write_csv):
    path = write_csv("d.csv", "rm\n2\n12\n")
    res = score(
        models,
        tmp_path / "out",
        path,
        extra=["--domain-min", 2.5, "--domain-max", 10, "--max-reject-fraction", 1],
    )
    assert rejects(run_dir(res))["reason"].tolist() == ["out_of_domain", "out_of_domain"]


def test_predictions_equal_the_keras_models_own_output(models, tmp_path):
    rooms = np.random.default_rng(1).uniform(3, 9, 5000).astype("float32")
    path = tmp_path / "many.parquet"
    pq.write_table(pa.table({"rm": rooms}), path)
    got = predictions(run_dir(score(models, tmp_path / "out", path, extra=["--chunk-rows", 999])))
    model, _ = Registry(models).load("production")
    keras_out = np.asarray(model(rooms.reshape(-1, 1))).reshape(-1)
    np.testing.assert_allclose(
        got["predicted_median_price_k"].to_numpy(),
        keras_out,
        rtol=2 * np.finfo("float32").eps,
        atol=0,
    )


def test_a_non_linear_model_takes_the_keras_path(models, tmp_path, write_csv):
    """A model that cannot be folded into weight and bias is still scored, by Keras itself."""
    from batch.model import network as m
    from batch.model.registry import Registry

    k = m.keras()
    net = k.Sequential(
        [k.Input(shape=(1,)), k.layers.Dense(2, activation="relu"), k.layers.Dense(1)]
    )
    registry = Registry(models)
    # v1's metadata without its fold record: that record vouches for v1's own model file, and
    # a version whose fold names another file is damaged (never scored).
    meta = registry.metadata("v1").model_copy(update={"fold": None})
    with registry.staging() as staged:
        net.save(staged / "model.keras")
        registry.publish(staged, meta, "never")
    path = write_csv("x.csv", "rm\n5\n6\n7\n")
    res = score(models, tmp_path / "out", path, extra=["--model-version", "v2"])
    folder = run_dir(res)
    expected = np.asarray(net(np.array([[5], [6], [7]], "float32"))).reshape(-1)
    np.testing.assert_allclose(predictions(folder)["predicted_median_price_k"], expected, rtol=1e-6)
    assert json.loads((folder / "report.json").read_text())["prediction_path"] == "Keras model"


def test_source_rows_count_across_batches(models, tmp_path, write_csv):
    body = "".join(f"{5 + (i % 30) / 10}\n" if i % 7 else "x\n" for i in range(1, 2501))
    path = write_csv("long.csv", "rm\n" + body)
    folder = run_dir(
        score(
            models, tmp_path / "out", path, extra=["--chunk-rows", 64, "--max-reject-fraction", 1]
        )
    )
    got, rej = predictions(folder), rejects(folder)
    assert sorted(got["source_row"].tolist() + rej["source_row"].tolist()) == list(range(1, 2501))
    assert rej["source_row"].tolist() == [i for i in range(1, 2501) if i % 7 == 0]


def test_reject_budget_exceeded_publishes_nothing_and_keeps_a_diagnosis(
    models, tmp_path, write_csv
):
    out = tmp_path / "out"
    good = write_csv("good.csv", "rm\n6\n")
    first = run_dir(score(models, out, good))
    latest_before = (out / "LATEST").read_text()
    bad = mixed_csv(write_csv)  # 6 of 9 rows rejected
    res = score(models, out, bad, subprocess=True)
    assert res.code == 5
    line = one_error_sentence(res.stderr)
    assert "6 of 9" in line and "rejects.csv" in line
    assert res.json["status"] == "reject_budget_exceeded"
    failed = Path(res.json["run_dir"])
    assert failed.parent == out / "failed"
    assert sorted(p.name for p in failed.iterdir()) == ["rejects.csv", "report.html", "report.json"]
    assert json.loads((failed / "report.json").read_text())["status"] == "failed"
    assert [p.name for p in (out / "runs").iterdir()] == [first.name]
    assert (out / "LATEST").read_text() == latest_before
    assert not list(out.glob(".staging/*"))


def test_budget_is_a_setting(models, tmp_path, write_csv):
    path = write_csv("m.csv", "rm\n6\nx\n7\n8\n")  # 25% rejected
    assert score(models, tmp_path / "a", path, extra=["--max-reject-fraction", 0.2]).code == 5
    assert score(models, tmp_path / "b", path, extra=["--max-reject-fraction", 0.25]).code == 0


def test_new_only_scores_only_what_arrived(models, tmp_path, write_csv):
    out = tmp_path / "out"
    write_csv("a.csv", "rm\n6\n")
    first = score(models, out, tmp_path / "in", extra=["--new-only"])
    assert first.code == 0 and first.json["rows_scored"] == 1
    nothing = score(models, out, tmp_path / "in", extra=["--new-only"])
    assert nothing.code == 0 and nothing.json["status"] == "nothing_new"
    assert "nothing new" in nothing.stderr
    assert len(list((out / "runs").iterdir())) == 1
    write_csv("b.csv", "rm\n7\n")
    write_csv("a_copy.csv", "rm\n6\n")  # same content as a.csv: already scored
    second = score(models, out, tmp_path / "in", extra=["--new-only"])
    got = predictions(Path(second.json["run_dir"]))
    assert [p.rsplit("/", 1)[-1] for p in got["source_file"]] == ["b.csv"]
    # Without --new-only everything is scored again; --no-new-only beats BATCH_NEW_ONLY.
    assert score(models, out, tmp_path / "in").json["rows_scored"] == 3
    res = run_cli(
        "jobs.score",
        "--models-dir",
        models,
        "--output-dir",
        out,
        "--input",
        tmp_path / "in",
        "--no-new-only",
        env={"BATCH_NEW_ONLY": "true"},
    )
    assert res.code == 0 and res.json["rows_scored"] == 3


def test_new_only_retries_a_file_whose_run_failed(models, tmp_path, write_csv):
    out = tmp_path / "out"
    path = mixed_csv(write_csv)
    assert score(models, out, path, extra=["--new-only"]).code == 5
    res = score(models, out, path, extra=["--new-only", "--max-reject-fraction", 1])
    assert res.code == 0 and res.json["rows_scored"] == 3


def test_second_run_exits_6_at_once_naming_the_holder(models, tmp_path, write_csv):
    out = tmp_path / "out"
    path = write_csv("a.csv", "rm\n6\n")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from batch.storage.rundir import OutputDir; "
            f"OutputDir(Path({str(out)!r})).lock('holder-run'); print('locked', flush=True); "
            "time.sleep(120)",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        res = score(models, out, path, subprocess=True)
        assert res.code == 6
        line = one_error_sentence(res.stderr)
        assert f"pid {holder.pid}" in line and "started" in line
        assert time.monotonic() - started < 30  # at once, not after waiting for the holder
        assert not (out / "runs").exists()
    finally:
        holder.kill()
        holder.wait()
    assert score(models, out, path).code == 0  # the kernel released the dead holder's lock


def test_run_killed_mid_write_leaves_no_incomplete_run_and_rerun_succeeds(models, tmp_path):
    out = tmp_path / "out"
    path = tmp_path / "big.parquet"
    rooms = np.random.default_rng(0).uniform(4, 8, 400_000)
    pq.write_table(
        pa.table({"rm": rooms, "name": [f"s{i}" for i in range(len(rooms))]}),
        path,
        row_group_size=50_000,
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobs.score",
            "--models-dir",
            str(models),
            "--output-dir",
            str(out),
            "--input",
            str(path),
            "--chunk-rows",
            "500",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def writing() -> bool:
        parts = list(out.glob(".staging/*/predictions.csv"))
        return bool(parts) and parts[0].stat().st_size > 100_000

    kill_when(proc, writing, "the run writing its predictions", poll=0.05)
    runs = list((out / "runs").iterdir()) if (out / "runs").exists() else []
    assert all((r / "_SUCCESS").exists() for r in runs) and not runs
    assert not (out / "LATEST").exists()
    res = score(models, out, path, extra=["--chunk-rows", 100_000])
    folder = run_dir(res)
    assert res.json["rows_scored"] == 400_000 and (folder / "_SUCCESS").exists()
    assert not list(out.glob(".staging/*"))  # the killed run's leftovers were cleaned
    assert (out / "LATEST").read_text().strip() == folder.name


def test_successful_run_layout_and_latest(models, tmp_path, write_csv):
    out = tmp_path / "out"
    path = write_csv("a.csv", "rm,medv\n6,20\n7,30\n")
    res = score(models, out, path)
    folder = run_dir(res)
    assert folder.parent == out / "runs"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [
            "predictions.parquet",
            "predictions.csv",
            "rejects.csv",
            "report.json",
            "report.html",
            "loss.png",
            "fit.png",
            "_SUCCESS",
        ]
    )
    assert (out / "LATEST").read_text().strip() == folder.name == res.json["run_id"]
    import re

    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", folder.name)
    assert res.json["rows_scored"] == 2 and res.json["rows_rejected"] == 0
    assert res.json["status"] == "succeeded"
    assert "report.html" in res.stderr  # says where the report is


def test_report_json_has_every_contract_field(models, tmp_path, write_csv):
    path = write_csv("a.csv", "rm,medv\n6,20\n7,30\n5,\n")
    folder = run_dir(score(models, tmp_path / "out", path))
    report = json.loads((folder / "report.json").read_text())
    for key in (
        "run_id",
        "status",
        "started_at",
        "finished_at",
        "model_version",
        "model",
        "inputs",
        "rows_scored",
        "rows_rejected",
        "rejects_by_reason",
        "prediction_summary",
        "metrics",
        "drift",
        "comparable",
        "comparability",
    ):
        assert key in report, key
    assert set(report["model"]) >= {"weight", "bias", "metrics"}
    assert set(report["inputs"][0]) >= {
        "path",
        "sha256",
        "format",
        "rows_read",
        "rows_scored",
        "rows_rejected",
    }
    summary = report["prediction_summary"]
    preds = predictions(folder)["predicted_median_price_k"].astype("float64")
    assert summary["count"] == 3
    assert summary["mean"] == pytest.approx(preds.mean())
    assert (summary["min"], summary["p50"], summary["max"]) == pytest.approx(
        (preds.min(), preds.median(), preds.max())
    )
    errors = preds[:2].to_numpy() - np.array([20, 30])
    assert report["metrics"]["mse"] == pytest.approx(np.mean(errors**2))
    assert report["metrics"]["mae"] == pytest.approx(np.mean(np.abs(errors)))
    assert report["metrics"]["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)))
    assert report["metrics"]["rows"] == 2


def test_metrics_null_without_true_price(models, tmp_path, write_csv):
    folder = run_dir(score(models, tmp_path / "out", write_csv("a.csv", "rm\n6\n")))
    assert json.loads((folder / "report.json").read_text())["metrics"] is None


def test_drift_warning_in_plain_words(models, tmp_path, write_csv):
    from tests.helpers import BOSTON_CSV

    rooms = pd.read_csv(BOSTON_CSV)["rm"].iloc[::5]  # suburbs like the training data
    similar = write_csv("similar.csv", "rm\n" + "".join(f"{r}\n" for r in rooms))
    folder = run_dir(score(models, tmp_path / "a", similar))
    drift = json.loads((folder / "report.json").read_text())["drift"]
    assert drift["differs_markedly"] is False and drift["warnings"] == []
    mansions = write_csv(
        "mansions.csv", "rm\n" + "".join(f"{9 + (i % 10) / 5}\n" for i in range(50))
    )
    folder = run_dir(score(models, tmp_path / "b", mansions))
    report = json.loads((folder / "report.json").read_text())
    assert report["drift"]["differs_markedly"] is True
    assert report["drift"]["input"]["share_outside_training_range"] == 1.0
    assert report["drift"]["training"]["mean"] == pytest.approx(6.27, abs=0.05)
    html = (folder / "report.html").read_text()
    assert "differs markedly" in html and "outside the training range" in html


def test_report_html_is_self_contained_and_escapes_input_values(models, tmp_path, write_csv):
    evil = "<script>alert(1)</script>"
    path = write_csv(
        "<b>evil</b>.csv", f'suburb,"{evil}rm"\n"{evil}",6\nx,"<img src=x onerror=alert(2)>"\n'
    )
    res = score(
        models,
        tmp_path / "out",
        path,
        extra=["--feature-column", f"{evil}rm", "--max-reject-fraction", 1],
    )
    folder = run_dir(res)
    html = (folder / "report.html").read_text()
    assert "<script" not in html and "<img src=x" not in html and "<b>evil" not in html
    assert "&lt;b&gt;evil&lt;/b&gt;.csv" in html  # file name
    assert "&lt;script&gt;alert(1)&lt;/script&gt;rm" in html  # column name
    assert "&lt;img src=x onerror=alert(2)&gt;" in html  # raw value of a rejected row
    assert html.count("data:image/png;base64,") == 2
    for remote in ("http://", "https://", "<link", "src='/", 'src="/'):
        assert remote not in html


def test_predictions_csv_is_spreadsheet_safe_and_parquet_keeps_raw(models, tmp_path, write_csv):
    path = write_csv(
        "inj.csv",
        'suburb,rm,note\n"=HYPERLINK(""http://x"",""y"")",6,-1\n'
        "@SUM(1),7,+cmd|calc\nplain,5,-2.5\n",
    )
    folder = run_dir(score(models, tmp_path / "out", path))
    csv_rows = pd.read_csv(folder / "predictions.csv", dtype=str, keep_default_na=False)
    assert csv_rows["suburb"].tolist() == ['\'=HYPERLINK("http://x","y")', "'@SUM(1)", "plain"]
    assert csv_rows["note"].tolist() == ["-1", "'+cmd|calc", "-2.5"]  # numbers stay numbers
    raw = predictions(folder)
    assert raw["suburb"].tolist() == ['=HYPERLINK("http://x","y")', "@SUM(1)", "plain"]
    assert raw["note"].tolist() == ["-1", "+cmd|calc", "-2.5"]


def test_rejects_csv_raw_values_are_spreadsheet_safe(models, tmp_path, write_csv):
    path = write_csv("r.csv", "rm\n=1+2\n6\n6\n6\n6\n6\n6\n6\n6\n6\n6\n")
    folder = run_dir(score(models, tmp_path / "out", path))
    assert rejects(folder)["raw_value"].tolist() == ["'=1+2"]


def test_model_version_selection(models, tmp_path, write_csv):

    registry = Registry(models)
    shutil.copytree(models / "v1", tmp_path / "copy")
    with registry.staging() as staged:
        for f in ("model.keras", "history.csv", "loss.png", "fit.png"):
            shutil.copy(tmp_path / "copy" / f, staged / f)
        registry.publish(staged, registry.metadata("v1"), "never")  # v2, not production
    path = write_csv("a.csv", "rm\n6\n")
    assert predictions(run_dir(score(models, tmp_path / "o1", path)))["model_version"][0] == "v1"
    got = predictions(
        run_dir(score(models, tmp_path / "o2", path, extra=["--model-version", "latest"]))
    )
    assert got["model_version"][0] == "v2"
    res = score(models, tmp_path / "o3", path, extra=["--model-version", "v7"], subprocess=True)
    assert res.code == 4 and "v7" in one_error_sentence(res.stderr)


@pytest.mark.parametrize(
    "case, code", [("ok", 0), ("usage", 2), ("input", 3), ("model", 4), ("tampered", 4)]
)
def test_exit_codes_as_subprocess(models, tmp_path, write_csv, case, code):
    good = write_csv("a.csv", "rm\n6\n")
    args = {
        "ok": [good],
        "usage": [good, "--max-reject-fraction", "abc"],
        "input": [write_csv("b.csv", "size\n6\n")],
        "model": [good],
        "tampered": [good],
    }[case]
    models_dir = models
    if case == "model":
        models_dir = tmp_path / "empty-registry"
    if case == "tampered":
        (models / "v1" / "model.keras").write_bytes(b"garbage")
    res = run_cli(
        "jobs.score", "--models-dir", models_dir, "--output-dir", tmp_path / "out", "--input", *args
    )
    assert res.code == code, res.stderr[-2000:]
    last = json.loads(res.stdout.strip().splitlines()[-1])
    if code:
        one_error_sentence(res.stderr)
        assert "Traceback" not in res.stderr
        assert last["status"] == "failed" and last["exit_code"] == code
        assert not (tmp_path / "out" / "runs").exists()
    else:
        assert set(last) >= {"run_id", "run_dir", "rows_scored", "rows_rejected", "status"}


def test_a_row_at_exactly_the_training_minimum_is_in_range(models, tmp_path, write_csv):
    meta = Registry(models).metadata("production")
    low, high = meta.feature_range.min, meta.feature_range.max
    assert (low, high) == (3.561, 8.725)  # decimals, not float32 noise
    folder = run_dir(score(models, tmp_path / "out", write_csv("edge.csv", f"rm\n{low}\n{high}\n")))
    assert predictions(folder)["out_of_range"].tolist() == [False, False]


def test_the_bundled_sample_inputs_score_with_exit_0(models, tmp_path):
    res = score(models, tmp_path / "out", REPO / "sample_inputs", subprocess=True)
    assert res.code == 0, res.stderr[-2000:]
    assert res.json["rows_scored"] == 74 and res.json["rows_rejected"] == 2
    folder = Path(res.json["run_dir"])
    assert rejects(folder)["reason"].tolist() == ["missing", "not_a_number"]
    report = json.loads((folder / "report.json").read_text())
    assert report["out_of_range"]["rows"] == 3 and report["metrics"]["rows"] > 0


def test_every_scored_row_has_a_band_and_the_report_measures_coverage(models, tmp_path):
    from tests.helpers import BOSTON_CSV

    res = score(models, tmp_path / "out", BOSTON_CSV, extra=["--max-reject-fraction", 1])
    folder = run_dir(res)
    got = predictions(folder)
    low, pred, high = (
        got["predicted_low_k"],
        got["predicted_median_price_k"],
        got["predicted_high_k"],
    )
    assert len(got) == 506 and ((low <= pred) & (pred <= high)).all() and (low < high).all()
    report = json.loads((folder / "report.json").read_text())
    inside = ((got["medv"].astype(float) >= low) & (got["medv"].astype(float) <= high)).mean()
    assert report["metrics"]["interval_coverage"] == pytest.approx(inside)
    assert report["metrics"]["interval_level"] == 0.9 and report["interval"]["available"]
    assert 0.8 < inside < 0.97  # about the promised share of the 506 Boston suburbs
    csv = pd.read_csv(folder / "predictions.csv")
    assert csv["predicted_low_k"].notna().all()
    html = (folder / "report.html").read_text()
    assert "lie inside their price band" in html


def test_a_version_without_bands_scores_with_empty_band_columns(models, tmp_path, write_csv):
    meta_path = models / "v1" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta.pop("interval")  # as written before bands existed
    meta_path.write_text(json.dumps(meta))
    folder = run_dir(score(models, tmp_path / "out", write_csv("a.csv", "rm,medv\n6,20\n")))
    got = predictions(folder)
    assert got["predicted_low_k"].isna().all() and got["predicted_high_k"].isna().all()
    report = json.loads((folder / "report.json").read_text())
    assert not report["interval"]["available"] and "retrain" in report["interval"]["note"]
    assert report["metrics"]["interval_coverage"] is None
