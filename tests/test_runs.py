"""jobs.runs list/show/prune, runs.jsonl and index.html on an output folder built by real runs."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, run_cli, run_main


def runs_main(*args):
    from jobs.runs import main

    return run_main(main, list(args))


def folders(out: Path) -> set[str]:
    return {
        f"{kind}/{p.name}"
        for kind in ("runs", "failed")
        if (out / kind).is_dir()
        for p in (out / kind).iterdir()
    }


def test_every_run_is_recorded_newest_first_with_its_exit_code(scored_output):
    out = scored_output["output"]
    first, missing, second, broken = scored_output["summaries"]
    lines = [json.loads(x) for x in (out / "runs.jsonl").read_text().splitlines()]
    assert [x["exit_code"] for x in lines] == [0, 3, 0, 5]
    assert lines[1]["run_dir"] is None and "missing.csv" in lines[1]["error"]
    assert lines[3]["run_dir"] == f"failed/{broken['run_id']}"
    assert lines[3]["status"] == "reject_budget_exceeded"

    res = runs_main("list", "--json", "--output-dir", out)
    assert res.code == 0, res.stderr
    listed = json.loads(res.stdout)
    assert [r["exit_code"] for r in listed] == [5, 0, 3, 0]
    assert [r["run_id"] for r in listed if r["run_dir"]] == [
        broken["run_id"],
        second["run_id"],
        first["run_id"],
    ]
    assert listed[3]["rows_scored"] == 20 and listed[3]["mse"] is not None
    assert listed[3]["model_version"] == "v1"
    assert listed[0]["rows_rejected"] == 10 and listed[0]["reject_fraction"] == 0.5


def test_list_table_marks_latest_and_show_prints_the_report_summary(scored_output):
    out = scored_output["output"]
    second = scored_output["summaries"][2]
    res = runs_main("list", "--output-dir", out)
    assert res.code == 0, res.stderr
    header, *rows = res.stdout.strip().splitlines()
    assert header.split()[:5] == ["run_id", "started", "day", "status", "exit"]
    assert len(rows) == 4
    assert f"{second['run_id']} (LATEST)" in rows[1]

    shown = runs_main("show", "latest", "--output-dir", out)
    assert shown.code == 0, shown.stderr
    assert shown.stdout.startswith(f"run {second['run_id']}: succeeded (exit 0)")
    assert "30 scored, 0 rejected" in shown.stdout
    assert "model: v1" in shown.stdout

    full = runs_main("show", second["run_id"], "--json", "--output-dir", out)
    assert json.loads(full.stdout)["run_id"] == second["run_id"]

    unknown = runs_main("show", "20000101T000000Z-000000", "--output-dir", out)
    assert unknown.code == 2
    assert "jobs.runs list" in unknown.stderr


def test_index_lists_every_run_with_links_to_existing_reports(scored_output):
    out = scored_output["output"]
    page = (out / "index.html").read_text()
    for summary in scored_output["summaries"]:
        if summary.get("run_id"):
            assert f"id='run-{summary['run_id']}'" in page
    assert page.count("<tr id='run-") == 4
    assert "missing.csv" in page  # the exit-3 run, from its outcome line
    links = [part.split("'")[0] for part in page.split("<a href='")[1:]]
    assert len(links) == 3 and all((out / link).is_file() for link in links)
    assert "http://" not in page and "https://" not in page
    assert page.count("<img ") == 5  # rows, reject share, mean prediction, MSE, band coverage


def test_score_metrics_after_the_failed_run(scored_output):
    from prometheus_client.parser import text_string_to_metric_families

    out = scored_output["output"]
    families = {
        f.name: f
        for f in text_string_to_metric_families((out / "metrics" / "batch_score.prom").read_text())
    }
    value = {f: families[f].samples[0].value for f in families if families[f].samples}
    assert value["batch_score_last_exit_code"] == 5
    third = json.loads((out / "runs.jsonl").read_text().splitlines()[2])
    assert value["batch_score_last_success_timestamp_seconds"] == pytest.approx(
        dt.datetime.fromisoformat(third["finished_at"]).timestamp(), abs=1
    )
    rows = {s.labels["outcome"]: s.value for s in families["batch_score_rows"].samples}
    assert rows == {"read": 20, "scored": 10, "rejected": 10, "out_of_range": 0}


def test_prune_dry_run_removes_nothing(copy_output):
    before = folders(copy_output)
    log_before = (copy_output / "runs.jsonl").read_text()
    res = runs_main("prune", "--keep", "0", "--dry-run", "--output-dir", copy_output)
    assert res.code == 0, res.stderr
    assert res.stdout.count("would remove runs/") + res.stdout.count("would remove failed/") == 2
    assert folders(copy_output) == before
    assert (copy_output / "runs.jsonl").read_text() == log_before


def test_prune_keep_never_removes_latest(copy_output, scored_output):
    first, _, second, broken = scored_output["summaries"]
    res = runs_main("prune", "--keep", "1", "--output-dir", copy_output)
    assert res.code == 0, res.stderr
    # The newest folder (the failed run) is the one kept; LATEST stays as well.
    assert folders(copy_output) == {f"runs/{second['run_id']}", f"failed/{broken['run_id']}"}
    assert f"removed runs/{first['run_id']}" in res.stdout
    assert "removed the log line of a run without a folder" in res.stdout  # the exit-3 run
    listed = json.loads(runs_main("list", "--json", "--output-dir", copy_output).stdout)
    assert [r["run_id"] for r in listed] == [broken["run_id"], second["run_id"]]
    page = (copy_output / "index.html").read_text()
    assert first["run_id"] not in page and second["run_id"] in page

    res = runs_main("prune", "--keep", "0", "--output-dir", copy_output)
    assert res.code == 0, res.stderr
    assert folders(copy_output) == {f"runs/{second['run_id']}"}
    assert (copy_output / "LATEST").read_text().strip() == second["run_id"]


def test_prune_older_than(copy_output):
    res = runs_main("prune", "--older-than", "1", "--output-dir", copy_output)
    assert res.code == 0 and "nothing to remove" in res.stdout
    assert len(folders(copy_output)) == 3


def test_prune_needs_a_rule():
    res = runs_main("prune")
    assert res.code == 2
    assert "--keep" in res.stderr


def test_prune_honours_the_output_lock_held_by_another_process(copy_output):
    """A real process holds the output lock: prune exits 6 naming it and removes nothing."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from batch.storage.rundir import OutputDir\n"
            "OutputDir(Path(sys.argv[1])).lock('holder'); print('locked', flush=True); time.sleep(60)",
            str(copy_output),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = folders(copy_output)
        res = run_cli("jobs.runs", "prune", "--keep", "0", "--output-dir", copy_output)
        assert res.code == 6, res.stderr
        assert f"pid {holder.pid}" in res.stderr
        assert folders(copy_output) == before
    finally:
        holder.terminate()
        holder.wait(timeout=10)
    res = runs_main("prune", "--keep", "0", "--output-dir", copy_output)
    assert res.code == 0, res.stderr
    assert len(folders(copy_output)) == 1


def test_runs_help_and_list_never_import_tensorflow():
    res = run_cli("jobs.runs", "--help")
    assert res.code == 0 and "prune" in res.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, jobs.runs; sys.argv=['x','list','--output-dir',"
            "'/nonexistent']; jobs.runs.main(sys.argv[1:]); print('tensorflow' in sys.modules)",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert probe.stdout.strip().splitlines()[-1] == "False", probe.stderr


def test_a_damaged_line_or_report_is_listed_as_damaged_and_the_rest_still_shows(copy_output):
    """runs.jsonl and report.json are read as typed documents: damage is shown, never fatal."""
    lines = (copy_output / "runs.jsonl").read_text().splitlines()
    older = json.loads(lines[0])
    older.pop("schema_version")  # a line from before documents had a version still reads
    lines[0] = json.dumps(older)
    lines.insert(2, '{"run_id": "torn')  # a write torn by a crash
    (copy_output / "runs.jsonl").write_text("\n".join(lines) + "\n")
    # The run folder that is not LATEST (two runs started in one second sort by their random
    # suffix, so the oldest name is not always the older run).
    latest = (copy_output / "LATEST").read_text().strip()
    damaged_id = next(p.name for p in (copy_output / "runs").iterdir() if p.name != latest)
    report = copy_output / "runs" / damaged_id / "report.json"
    value = json.loads(report.read_text())
    value["rows_scored"] = "many"
    report.write_text(json.dumps(value))

    res = runs_main("list", "--output-dir", copy_output)
    assert res.code == 0, res.stderr
    rows = res.stdout.strip().splitlines()[1:]
    assert len(rows) == 5  # the four runs and the torn line
    assert sum(" damaged " in row for row in rows) == 2
    assert f"{damaged_id}" in next(row for row in rows if " damaged " in row and damaged_id in row)
    warnings = [line for line in res.stderr.splitlines() if "is damaged" in line]
    assert len(warnings) == 2, res.stderr
    assert any("runs.jsonl line" in w and "line 3" in w for w in warnings)
    assert any("report.json" in w and "field 'rows_scored'" in w for w in warnings)

    listed = json.loads(runs_main("list", "--json", "--output-dir", copy_output).stdout)
    damaged = [r for r in listed if r["status"] == "damaged"]
    assert len(damaged) == 2 and all("is damaged" in r["error"] for r in damaged)
    shown = runs_main("show", damaged_id, "--output-dir", copy_output)
    assert shown.code == 0 and "damaged" in shown.stdout and "rows_scored" in shown.stdout

    # The history page is rebuilt with them; a prune removes old folders and keeps the torn line.
    res = runs_main("prune", "--keep", "0", "--output-dir", copy_output)
    assert res.code == 0, res.stderr
    assert f"removed runs/{damaged_id}" in res.stdout
    assert '{"run_id": "torn' in (copy_output / "runs.jsonl").read_text()
    page = (copy_output / "index.html").read_text()
    assert "damaged" in page and damaged_id not in page


def test_a_line_of_bytes_that_are_not_utf8_is_damaged_not_a_crash(copy_output):
    """Garbage bytes (a torn write, a disk error) damage their own line only, and a prune
    keeps them byte for byte."""
    log = copy_output / "runs.jsonl"
    garbage = b'{"broken\n\x00\xff\xfe garbage\n'
    log.write_bytes(log.read_bytes() + garbage)
    res = runs_main("list", "--output-dir", copy_output)
    assert res.code == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert sum(" damaged " in row for row in res.stdout.splitlines()) == 2
    res = runs_main("prune", "--keep", "0", "--output-dir", copy_output)
    assert res.code == 0, res.stderr
    assert log.read_bytes().endswith(garbage)


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--older-than", "nan"),
        ("--older-than", "inf"),
        ("--older-than", "1e12"),
        ("--older-than", "-5"),
        ("--keep", "-1"),
        ("--keep", "10000000000"),
    ],
)
def test_prune_refuses_values_past_any_sane_bound_with_exit_2(copy_output, flag, value):
    before = sorted(p.name for p in (copy_output / "runs").iterdir())
    res = runs_main("prune", flag, value, "--output-dir", copy_output)
    assert res.code == 2, res.stderr
    assert "allowed:" in res.stderr and "Traceback" not in res.stderr
    assert sorted(p.name for p in (copy_output / "runs").iterdir()) == before
