"""The output directory and the prediction sink, on real files in a temporary folder."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.core.rules import REJECT_SCHEMA
from batch.io import outputs
from batch.io.sink import PredictionSink
from batch.storage import rundir

SCHEMA = pa.schema([("name", pa.string()), ("n", pa.string()), ("run_id", pa.string())])


def batch(names, ns):
    return pa.record_batch({"name": names, "n": ns, "run_id": ["=r"] * len(names)}, schema=SCHEMA)


def rejects(rows):
    return pa.record_batch(
        {
            "source_file": ["f"] * len(rows),
            "source_row": rows,
            "raw_value": ["=x"] * len(rows),
            "reason": ["missing"] * len(rows),
        },
        schema=REJECT_SCHEMA,
    )


def test_single_and_part_sinks_give_the_same_files(tmp_path):
    one, many = tmp_path / "one", tmp_path / "many"
    one.mkdir()
    many.mkdir()
    data = [(batch(["a", "=b"], ["1", "2"]), rejects([3])), (batch(["c"], ["4"]), rejects([]))]
    sink = PredictionSink(one, SCHEMA, REJECT_SCHEMA)
    for out, rej in data:
        sink.write(out, rej)
    sink.close()
    outputs.start_parts(many)
    for i, (out, rej) in enumerate(data):
        part = PredictionSink(many, SCHEMA, REJECT_SCHEMA, part=f"part-{i:05d}")
        part.write(out, rej)
        part.close()
    outputs.join_parts(many, SCHEMA, REJECT_SCHEMA)
    for name in ("predictions.csv", "rejects.csv"):
        assert (one / name).read_bytes() == (many / name).read_bytes()
    text = (one / "predictions.csv").read_text()
    assert '"\'=b"' in text or "'=b" in text  # defused in the CSV
    assert "=r" in text and "'=r" not in text  # run_id is ours: never rewritten
    assert pq.read_table(one / "predictions.parquet").column("name").to_pylist() == ["a", "=b", "c"]
    assert len(outputs.parquet_files(many)) == 2 and not (many / "parts").exists()


def real_report(scored_output) -> str:
    """The report.json of the oldest real successful run (north.csv)."""
    return sorted(scored_output["output"].glob("runs/*/report.json"))[0].read_text()


def test_publish_makes_a_complete_run_and_latest(tmp_path, scored_output):
    out = rundir.OutputDir(tmp_path / "output")
    report = real_report(scored_output)
    out.lock("r1")
    try:
        staged = out.staging("r1")
        (staged / "report.json").write_text(report)
        final = out.publish(staged, "r1")
    finally:
        out.unlock()
    assert (final / rundir.SUCCESS).is_file() and out.latest() == "r1"
    hashes = {i["sha256"] for i in json.loads(report)["inputs"]}
    assert len(hashes) == 1 and out.successful_runs() == [final]
    assert out.scored_hashes() == hashes


def scored_by_run(output) -> dict[str, str]:
    """{run folder name: the sha256 its report.json names} for every successful run."""
    return {
        run.name: json.loads((run / "report.json").read_text())["inputs"][0]["sha256"]
        for run in rundir.OutputDir(output).successful_runs()
    }


@pytest.mark.parametrize(
    "damage",
    [
        lambda report: "{not json",
        lambda report: json.dumps({**report, "inputs": [{"sha256": "abc"}]}),  # half a document
        lambda report: json.dumps({**report, "schema_version": 99}),  # from a newer version
    ],
)
def test_a_damaged_report_counts_its_inputs_as_not_scored_with_a_warning(
    copy_output, caplog, damage
):
    """--new-only reads every report.json whole (parse_report): a damaged one is skipped, not
    half-read, and the other runs still count."""
    by_run = scored_by_run(copy_output)
    assert len(by_run) == 2
    damaged, kept = sorted(by_run)
    path = copy_output / "runs" / damaged / "report.json"
    path.write_text(damage(json.loads(path.read_text())))
    with caplog.at_level("WARNING", logger="batch.storage.rundir"):
        hashes = rundir.OutputDir(copy_output).scored_hashes()
    assert hashes == {by_run[kept]}
    (warning,) = [r.getMessage() for r in caplog.records]
    assert f"report.json at {path}" in warning and "count as not scored" in warning


def test_a_report_from_before_schema_versions_still_counts(copy_output):
    by_run = scored_by_run(copy_output)
    for run in by_run:
        path = copy_output / "runs" / run / "report.json"
        report = json.loads(path.read_text())
        report.pop("schema_version", None)  # absent too while batch.ops writes none
        path.write_text(json.dumps(report, indent=2))
    assert rundir.OutputDir(copy_output).scored_hashes() == set(by_run.values())


def test_publish_failed_keeps_only_the_diagnosis(tmp_path):
    out = rundir.OutputDir(tmp_path)
    staged = out.staging("r2")
    for name in ("report.json", "report.html", "rejects.csv", "predictions.csv", "fit.png"):
        (staged / name).write_text("x")
    (staged / "predictions.parquet").mkdir()
    final = out.publish_failed(staged, "r2")
    assert sorted(p.name for p in final.iterdir()) == sorted(rundir.DIAGNOSIS_FILES)
    assert out.latest() is None and out.successful_runs() == []


def test_leftovers_of_killed_runs_are_removed(tmp_path):
    out = rundir.OutputDir(tmp_path)
    (out.staging("old") / "predictions.csv").write_text("x")
    out.clean_leftovers()
    assert list((tmp_path / rundir.STAGING).iterdir()) == []


def test_run_ids_sort_by_time():
    import datetime as dt

    from batch.core.ids import new_run_id

    a = new_run_id(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
    b = new_run_id(dt.datetime(2026, 1, 2, 3, 4, 6, tzinfo=dt.UTC))
    assert a.startswith("20260102T030405Z-") and a < b


@pytest.mark.parametrize("held", [True])
def test_a_held_lock_names_its_holder(tmp_path, held):
    from batch.core.errors import LockHeld

    first, second = rundir.OutputDir(tmp_path), rundir.OutputDir(tmp_path)
    first.lock("r1")
    try:
        with pytest.raises(LockHeld, match=r"pid \d+"):
            second.lock("r2")
    finally:
        first.unlock()
