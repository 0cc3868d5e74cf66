"""jobs.labels (true prices joined to past runs) and the label-free estimate (issue 25, 1-2).

The main tests score the Boston held-out test rows, the ones the trainer recorded test_mae and
the band's test coverage on, through the real CLI, and join their true prices afterwards.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import assert_failed, one_error_sentence, run_cli

pytestmark = pytest.mark.slow  # a real training (the session's) and several real runs


def _metadata(models: Path) -> dict:
    return json.loads((models / "v1" / "metadata.json").read_text())


@pytest.fixture(scope="module")
def boston_test(trained, tmp_path_factory) -> dict:
    """The Boston test rows with an id, scored three times (all, low rooms, high rooms)."""
    from batch.model import datasets

    data = datasets.load_boston()
    base = tmp_path_factory.mktemp("labels")
    x, y = data.x_test.astype("float64"), data.y_test
    median = float(np.median(x))
    groups = {
        "all": np.ones(len(x), bool),
        "low": x <= median,
        "high": x > median,
    }
    out = base / "output"
    runs = {}
    for name, rows in groups.items():
        path = base / "in" / f"{name}.csv"
        path.parent.mkdir(exist_ok=True)
        lines = [f"{i},{np.float32(x[i])}\n" for i in np.flatnonzero(rows)]
        path.write_text("id,rm\n" + "".join(lines))
        res = run_cli(
            "jobs.score", "--models-dir", trained["models"], "--output-dir", out, "--input", path
        )
        assert res.code == 0, res.stderr[-3000:]
        runs[name] = res.json["run_id"]
    labels = base / "labels.csv"
    labels.write_text("id,MEDV\n" + "".join(f"{i},{np.float32(v)}\n" for i, v in enumerate(y)))
    return {"out": out, "runs": runs, "labels": labels, "models": trained["models"], "base": base}


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _join(out: Path, *args) -> object:
    return run_cli("jobs.labels", "--output-dir", out, *args)


@pytest.fixture(scope="module")
def joined(boston_test) -> dict:
    res = _join(boston_test["out"], "--key", "id", boston_test["labels"])
    assert res.code == 0, res.stderr[-3000:]
    return {**boston_test, "summary": res.json}


def _result(out: Path, run_id: str) -> dict:
    return json.loads((out / "labels" / f"{run_id}.json").read_text())


def test_realized_errors_equal_the_models_recorded_test_errors(joined):
    meta = _metadata(joined["models"])
    result = _result(joined["out"], joined["runs"]["all"])
    assert result["rows_labelled"] == 102 == meta["interval"]["test_rows"]
    assert result["labels_unmatched"] == 0 and result["predictions_unlabelled"] == 0
    assert result["unit"] == "$K" and result["label_column"] == "MEDV"
    assert result["realized"]["mae"] == pytest.approx(meta["metrics"]["test_mae"], abs=1e-4)
    assert result["realized"]["mse"] == pytest.approx(meta["metrics"]["test_mse"], abs=1e-3)
    assert result["realized"]["coverage"] == pytest.approx(meta["interval"]["test_coverage"])
    assert len(result["deciles"]) == 10
    assert sum(d["rows"] for d in result["deciles"]) == 102
    # The summary line and the history say the same.
    by_run = {r["run_id"]: r for r in joined["summary"]["runs"]}
    assert by_run[joined["runs"]["all"]]["outcome"] == "new"
    lines = (joined["out"] / "labels" / "history.jsonl").read_text().splitlines()
    assert len(lines) == 3 and not any(json.loads(ln)["replaced"] for ln in lines)


def test_a_second_join_with_the_same_labels_changes_no_file(joined):
    before = _tree(joined["out"])
    res = _join(joined["out"], "--key", "id", joined["labels"])
    assert res.code == 0, res.stderr[-3000:]
    assert res.json["written"] == 0 and res.json["unchanged"] == 3
    assert _tree(joined["out"]) == before


def test_estimated_mae_is_close_and_follows_rooms(joined):
    out, runs = joined["out"], joined["runs"]
    calibration_mae = _metadata(joined["models"])["error_profile"]["mae"]
    results = {name: _result(out, run_id) for name, run_id in runs.items()}
    real = {n: r["realized"]["mae"] for n, r in results.items()}
    est = {n: r["estimated"]["mae"] for n, r in results.items()}
    assert abs(est["all"] - real["all"]) <= 0.2 * real["all"], (est, real)
    for name in ("low", "high"):
        assert abs(est[name] - real[name]) < abs(calibration_mae - real[name]), (name, est, real)
    assert est["high"] > est["all"] > est["low"]  # big houses: a larger expected error
    # Every run reports the estimate itself, label-free, with its method named.
    report = json.loads((out / "runs" / runs["high"] / "report.json").read_text())
    assert report["estimate"]["estimated_mae"] == pytest.approx(est["high"], rel=1e-6)
    assert report["estimate"]["method"] == "calibration residuals, hinge in rooms"
    assert 0 < report["estimate"]["estimated_coverage"] <= 1


def test_runs_show_index_and_metrics_show_the_realized_numbers(joined):
    out, run_id = joined["out"], joined["runs"]["all"]
    shown = run_cli("jobs.runs", "--output-dir", out, "show", run_id)
    assert shown.code == 0, shown.stderr
    assert "labels (102 rows): realized MAE" in shown.stdout
    assert "estimated MAE" in shown.stdout
    page = (out / "index.html").read_text()
    assert "labels (MAE, coverage)" in page and "(102 rows)" in page
    prom = (out / "metrics" / "batch_labels.prom").read_text()
    assert f'batch_labels_realized_mae{{run_id="{run_id}"}}' in prom


def test_new_labels_replace_the_old_result_and_say_so(boston_test, tmp_path):
    out = tmp_path / "output"
    shutil.copytree(boston_test["out"], out)
    first = _join(out, "--key", "id", boston_test["labels"])
    assert first.code == 0, first.stderr[-3000:]
    lines = boston_test["labels"].read_text().splitlines()
    lines[1] = lines[1].split(",")[0] + ",50.0"  # one sale closed at another price
    changed = tmp_path / "labels2.csv"
    changed.write_text("\n".join(lines) + "\n")
    res = _join(out, "--key", "id", changed)
    assert res.code == 0, res.stderr[-3000:]
    assert boston_test["runs"]["all"] in res.json["replaced"]
    history = [json.loads(x) for x in (out / "labels" / "history.jsonl").read_text().splitlines()]
    assert [h["replaced"] for h in history].count(True) >= 1
    result = _result(out, boston_test["runs"]["all"])
    assert result["label_files"][0]["sha256"] == history[-1]["label_sha256"][0]


def test_labels_in_dollars_are_refused_naming_the_unit(boston_test, tmp_path):
    out = tmp_path / "output"
    shutil.copytree(boston_test["out"], out)
    dollars = tmp_path / "dollars.csv"
    rows = boston_test["labels"].read_text().splitlines()[1:]
    dollars.write_text(
        "id,medv\n" + "".join(f"{r.split(',')[0]},{float(r.split(',')[1]) * 1000}\n" for r in rows)
    )
    before = _tree(out)
    res = _join(out, "--key", "id", dollars)
    assert_failed(res, 3, "dollars", "$K")
    assert _tree(out) == before


def test_default_key_is_source_file_and_source_row_and_duplicates_are_left_out(
    boston_test, tmp_path
):
    out = tmp_path / "output"
    shutil.copytree(boston_test["out"], out)
    source = str(boston_test["base"] / "in" / "all.csv")
    y = [float(r.split(",")[1]) for r in boston_test["labels"].read_text().splitlines()[1:]]
    text = "source_file,source_row,medv\n" + "".join(
        f"{source},{i + 1},{v}\n" for i, v in enumerate(y)
    )
    text += f"{source},1,99.0\n"  # a second, different price for the first row: ambiguous
    (tmp_path / "by_row.csv").write_text(text)
    res = _join(out, tmp_path / "by_row.csv")
    assert res.code == 0, res.stderr[-3000:]
    assert [r["run_id"] for r in res.json["runs"]] == [boston_test["runs"]["all"]]
    result = _result(out, boston_test["runs"]["all"])
    assert result["duplicate_keys"] == {"labels": 1, "predictions": 0}
    assert result["rows_labelled"] == 101 and result["predictions_unlabelled"] == 1


def test_a_missing_label_file_or_an_unknown_key_is_one_sentence(boston_test, tmp_path):
    out = tmp_path / "output"
    shutil.copytree(boston_test["out"], out)
    before = _tree(out)
    assert_failed(_join(out, tmp_path / "nope.csv"), 3, "does not exist")
    assert_failed(_join(out, "--key", "parcel", boston_test["labels"]), 3, "'parcel'")
    assert _tree(out) == before


def test_the_result_file_is_a_typed_document_written_as_it_reads(joined):
    from batch.core.documents import dump, parse_labels_line, parse_labels_result

    folder = joined["out"] / "labels"
    path = folder / f"{joined['runs']['all']}.json"
    assert dump(parse_labels_result(path.read_bytes(), str(path))) == path.read_text()
    line = (folder / "history.jsonl").read_text().splitlines()[0]
    assert dump(parse_labels_line(line, "history.jsonl")) == line


def test_a_version_trained_before_the_estimate_reports_it_absent_with_a_reason(
    boston_test, models, tmp_path
):
    meta_file = models / "v1" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    del meta["error_profile"]
    meta_file.write_text(json.dumps(meta, indent=2) + "\n")
    out = tmp_path / "output"
    res = run_cli(
        "jobs.score", "--models-dir", models, "--output-dir", out,
        "--input", boston_test["base"] / "in" / "all.csv",
    )  # fmt: skip
    assert res.code == 0, res.stderr[-3000:]
    report = json.loads((out / "runs" / res.json["run_id"] / "report.json").read_text())
    assert report["estimate"]["available"] is False
    assert "no error profile" in report["estimate"]["note"]
    joined = _join(out, "--key", "id", boston_test["labels"])
    assert joined.code == 0, joined.stderr[-3000:]
    result = _result(out, res.json["run_id"])
    assert (
        result["estimated"]["available"] is False
        and "no error profile" in result["estimated"]["note"]
    )
    assert result["realized"]["mae"] == pytest.approx(meta["metrics"]["test_mae"], abs=1e-4)


def test_parquet_labels_join_a_run_that_kept_only_predictions_csv(boston_test, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "output"
    shutil.copytree(boston_test["out"], out)
    shutil.rmtree(out / "labels", ignore_errors=True)
    run_id = boston_test["runs"]["all"]
    shutil.rmtree(out / "runs" / run_id / "predictions.parquet")
    rows = [r.split(",") for r in boston_test["labels"].read_text().splitlines()[1:]]
    table = pa.table({"id": [int(i) for i, _ in rows], "medv": [float(v) for _, v in rows]})
    pq.write_table(table, tmp_path / "sales.parquet")
    res = _join(out, "--key", "id", tmp_path / "sales.parquet")
    assert res.code == 0, res.stderr[-3000:]
    meta = _metadata(boston_test["models"])
    result = _result(out, run_id)
    assert result["realized"]["mae"] == pytest.approx(meta["metrics"]["test_mae"], abs=1e-4)
    assert result["rows_labelled"] == 102 and len(result["deciles"]) == 10


def test_a_scoring_run_holding_the_output_folder_is_exit_6_and_nothing_is_written(
    boston_test, tmp_path
):
    from batch.storage.rundir import OutputDir

    out = tmp_path / "output"
    shutil.copytree(boston_test["out"], out)
    shutil.rmtree(out / "labels", ignore_errors=True)
    holder = OutputDir(out)
    holder.lock("20990101T000000Z-held")  # this process holds it, as a scoring run would
    try:
        res = _join(out, "--key", "id", boston_test["labels"])
    finally:
        holder.unlock()
    assert_failed(res, 6, "another scoring run", "wait for it to finish")
    assert not (out / "labels").exists()


@pytest.mark.parametrize(
    ("holder_id", "named"),
    [("labels", "a labels join"), ("prune", "a runs prune"), ("20990101T000000Z-x", "scoring run")],
)
def test_a_refused_job_is_told_which_job_holds_the_output_folder(tmp_path, holder_id, named):
    from batch.storage.rundir import OutputDir

    out = tmp_path / "output"
    holder = OutputDir(out)
    holder.lock(holder_id)
    try:
        res = run_cli("jobs.runs", "prune", "--output-dir", out, "--keep", "1")
    finally:
        holder.unlock()
    assert res.code == 6 and "Traceback" not in res.stderr, res.stderr
    sentence = one_error_sentence(res.stderr)
    assert named in sentence and "wait for it to finish" in sentence, sentence


def test_a_read_only_output_folder_is_exit_7_in_one_sentence(boston_test, tmp_path):
    import os

    from tests.helpers import WITHOUT_DAC_OVERRIDE

    if os.geteuid() != 0:
        pytest.skip("runs as root only (drops the capability that ignores permissions)")
    out = tmp_path / "output"
    shutil.copytree(boston_test["out"], out)
    shutil.rmtree(out / "labels", ignore_errors=True)
    out.chmod(0o555)
    try:
        res = run_cli(
            "jobs.labels", "--output-dir", out, "--key", "id", boston_test["labels"],
            prefix=WITHOUT_DAC_OVERRIDE,
        )  # fmt: skip
    finally:
        out.chmod(0o755)
    assert_failed(res, 7, str(out), "no labels result was written")
    assert not (out / "labels").exists()
