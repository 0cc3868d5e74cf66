"""Backfill: `jobs.score --backfill FROM..TO` with `{date}` in --input, one ordinary run per day:
idempotent (a day done is skipped), resumable after SIGKILL, --force supersedes; the logical
date in report.json, runs.jsonl, index.html and the lineage events; the scheduler's fills."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import REPO, assert_failed, kill_when, run_cli, run_main

SAMPLE = REPO / "sample_inputs" / "suburbs_north.csv"
DAYS = [f"2026-11-0{i}" for i in range(1, 6)]
RANGE = "2026-11-01..2026-11-05"


def dated_inputs(root: Path, days=DAYS, big: str | None = None) -> str:
    """One folder per day holding the bundled north sample (`big`: that day gets 60,000 rows);
    returns the --input pattern."""
    for day in days:
        folder = root / day
        folder.mkdir(parents=True)
        if day == big:
            rng = np.random.default_rng(7)
            rooms = rng.uniform(4.0, 8.5, 60_000).round(3)
            pd.DataFrame({"id": np.arange(60_000), "rm": rooms}).to_csv(
                folder / "suburbs.csv", index=False
            )
        else:
            shutil.copy(SAMPLE, folder / "suburbs.csv")
    return str(root / "{date}")


def backfill(models, out, pattern, *extra):
    from jobs.score import main

    args = ["--models-dir", models, "--output-dir", out, "--input", pattern, *extra]
    return run_main(main, args)


def log_lines(out: Path) -> list[dict]:
    path = out / "runs.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def succeeded_days(out: Path) -> list[str]:
    return [x["logical_date"] for x in log_lines(out) if x["status"] == "succeeded"]


def runs_listed(out: Path) -> list[dict]:
    res = run_cli("jobs.runs", "list", "--output-dir", out, "--json")
    assert res.code == 0, res.stderr
    return json.loads(res.stdout)


# -- the pure parts -----------------------------------------------------------------------------


def test_a_range_is_every_day_from_its_start_to_its_end_both_included():
    from batch.core import dates

    days = dates.parse_range("2026-02-27..2026-03-01")
    assert days == [dt.date(2026, 2, 27), dt.date(2026, 2, 28), dt.date(2026, 3, 1)]
    assert dates.parse_range("2026-11-05..2026-11-05") == [dt.date(2026, 11, 5)]
    assert dates.fill(["in/{date}/a.csv", "s3://b/{date}", "x{y}"], dt.date(2026, 1, 2)) == [
        "in/2026-01-02/a.csv",
        "s3://b/2026-01-02",
        "x{y}",
    ]


@pytest.mark.parametrize(
    "text, words",
    [
        ("2026-11-01", "FROM..TO"),
        ("2026-11-01..", "FROM..TO"),
        ("2026-11-05..2026-11-01", "before"),
        ("2026-11-01..2026-13-01", "YYYY-MM-DD"),
        ("2026-1-1..2026-1-2", "YYYY-MM-DD"),
        ("2000-01-01..2026-01-01", "more than"),
    ],
)
def test_a_range_that_is_not_one_is_a_usage_error(text, words):
    from batch.core import dates
    from batch.core.errors import ConfigError

    with pytest.raises(ConfigError, match=words):
        dates.parse_range(text)


def test_the_scheduler_gives_each_fire_the_day_of_its_scheduled_time_in_its_zone(settings):
    from batch.schedule.runner import scorer_command

    s = settings(input=["in/{date}"], timezone="America/New_York")
    # 03:30 UTC on 1 November is still 31 October in New York.
    nominal = dt.datetime(2026, 11, 1, 3, 30, tzinfo=dt.UTC)
    cmd = scorer_command(s, nominal)
    assert cmd[cmd.index("--logical-date") + 1] == "2026-10-31"
    assert cmd[cmd.index("--input") + 1] == "in/{date}"  # the scorer fills it
    later = scorer_command(s, None, now=dt.datetime(2026, 11, 2, 12, tzinfo=dt.UTC))
    assert later[later.index("--logical-date") + 1] == "2026-11-02"
    pinned = scorer_command(settings(input=["in/{date}"], logical_date="2026-10-01"), nominal)
    assert pinned[pinned.index("--logical-date") + 1] == "2026-10-01"
    assert pinned.count("--logical-date") == 1


# -- through the CLI ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_kill_during_the_third_day_then_a_rerun_completes_only_days_3_to_5(models, tmp_path):
    pattern = dated_inputs(tmp_path / "in", big=DAYS[2])
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "jobs.score", "--models-dir", str(models), "--output-dir"]
    cmd += [str(out), "--input", pattern, "--backfill", RANGE, "--chunk-rows", "500"]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def third_day_writing() -> bool:
        parts = list(out.glob(".staging/*/predictions.csv"))
        return len(succeeded_days(out)) == 2 and bool(parts) and parts[0].stat().st_size > 50_000

    kill_when(proc, third_day_writing, "the third day's run writing its predictions")
    assert succeeded_days(out) == DAYS[:2]
    first = {r["run_id"] for r in runs_listed(out)}

    again = run_cli("jobs.score", *cmd[3:])
    assert again.code == 0, again.stderr[-3000:]
    summary = again.json
    assert (summary["scored"], summary["skipped"], summary["not_attempted"]) == (3, 2, 0)
    assert [r["status"] for r in summary["runs"]] == ["already_scored"] * 2 + ["succeeded"] * 3
    assert succeeded_days(out) == DAYS  # each day once, in order
    assert summary["rows_scored"] + summary["rows_rejected"] == 60_000 + 2 * 36
    assert not list(out.glob(".staging/*"))  # the killed run's leftovers are gone

    lines_before = (out / "runs.jsonl").read_text()
    third = run_cli("jobs.score", *cmd[3:])
    assert third.code == 0, third.stderr[-3000:]
    assert (third.json["scored"], third.json["skipped"]) == (0, 5)
    assert (out / "runs.jsonl").read_text() == lines_before  # nothing scored, nothing recorded

    # Each day's run is an ordinary run: listed, with its folder, its day and its report.
    listed = [r for r in runs_listed(out) if r["status"] == "succeeded"]
    assert sorted(r["logical_date"] for r in listed) == DAYS
    assert {r["run_id"] for r in listed} >= first
    for run in listed:
        report = json.loads((out / run["run_dir"] / "report.json").read_text())
        assert report["logical_date"] == run["logical_date"]
        assert report["inputs"][0]["path"].endswith(f"{run['logical_date']}/suburbs.csv")
        shown = run_cli("jobs.runs", "show", run["run_id"], "--output-dir", out)
        assert f"logical date: {run['logical_date']}" in shown.stdout
    page = (out / "index.html").read_text()
    assert all(f"for {day}" in page for day in DAYS)


def test_a_day_without_input_is_recorded_once_and_scored_when_its_input_arrives(models, tmp_path):
    pattern = dated_inputs(tmp_path / "in", days=[DAYS[0], DAYS[2]])
    out = tmp_path / "out"
    res = backfill(models, out, pattern, "--backfill", "2026-11-01..2026-11-03")
    assert res.code == 0, res.stderr[-3000:]
    assert [r["status"] for r in res.json["runs"]] == ["succeeded", "no_input", "succeeded"]
    assert (res.json["scored"], res.json["no_input"]) == (2, 1)
    missing = [x for x in log_lines(out) if x["status"] == "no_input"]
    assert len(missing) == 1 and missing[0]["logical_date"] == DAYS[1]
    assert missing[0]["exit_code"] == 0 and "2026-11-02" in missing[0]["error"]
    again = backfill(models, out, pattern, "--backfill", "2026-11-01..2026-11-03")
    assert again.code == 0 and again.json["no_input"] == 1
    assert len([x for x in log_lines(out) if x["status"] == "no_input"]) == 1  # not repeated

    (tmp_path / "in" / DAYS[1]).mkdir()  # an empty folder is no input either
    assert (
        backfill(models, out, pattern, "--backfill", "2026-11-02..2026-11-02").json["no_input"] == 1
    )
    shutil.copy(SAMPLE, tmp_path / "in" / DAYS[1] / "late.csv")
    late = backfill(models, out, pattern, "--backfill", "2026-11-01..2026-11-03")
    assert late.code == 0 and [r["status"] for r in late.json["runs"]] == [
        "already_scored",
        "succeeded",
        "already_scored",
    ]
    assert sorted(succeeded_days(out)) == DAYS[:3]


def test_force_rescores_every_day_and_marks_the_earlier_runs_superseded(models, tmp_path):
    pattern = dated_inputs(tmp_path / "in", days=DAYS[:2])
    out = tmp_path / "out"
    first = backfill(models, out, pattern, "--backfill", "2026-11-01..2026-11-02")
    old = [r["run_id"] for r in first.json["runs"]]
    forced = backfill(models, out, pattern, "--backfill", "2026-11-01..2026-11-02", "--force")
    assert forced.code == 0 and forced.json["scored"] == 2
    new = [r["run_id"] for r in forced.json["runs"]]
    assert not set(new) & set(old)
    assert [r["supersedes"] for r in forced.json["runs"]] == [[old[0]], [old[1]]]
    listed = {r["run_id"]: r for r in runs_listed(out)}
    assert [listed[i]["superseded_by"] for i in old] == new  # the old runs stay, marked
    assert all((out / listed[i]["run_dir"] / "report.json").exists() for i in old)
    assert [listed[i]["superseded_by"] for i in new] == [None, None]
    report = json.loads((out / listed[new[0]]["run_dir"] / "report.json").read_text())
    assert report["supersedes"] == [old[0]]
    shown = run_cli("jobs.runs", "show", old[1], "--output-dir", out)
    assert f"superseded by {new[1]}" in shown.stdout
    assert f"superseded by {new[0]}" in (out / "index.html").read_text()
    table = run_cli("jobs.runs", "list", "--output-dir", out).stdout
    assert table.count("succeeded (superseded)") == 2


def test_a_failed_day_stops_the_backfill_and_a_rerun_after_the_fix_finishes(models, tmp_path):
    pattern = dated_inputs(tmp_path / "in", days=DAYS[:3])
    bad = tmp_path / "in" / DAYS[1] / "suburbs.csv"
    bad.write_text("id,colour\n1,blue\n")  # no rooms column: exit 3
    out = tmp_path / "out"
    res = backfill(models, out, pattern, "--backfill", "2026-11-01..2026-11-03")
    sentence = assert_failed(res, 3, "backfill stopped at 2026-11-02", "1 later day")
    assert "run the same command again" in sentence
    assert (res.json["scored"], res.json["failed"], res.json["not_attempted"]) == (1, 1, 1)
    assert succeeded_days(out) == DAYS[:1]
    shutil.copy(SAMPLE, bad)
    again = backfill(models, out, pattern, "--backfill", "2026-11-01..2026-11-03")
    assert again.code == 0 and again.json["scored"] == 2
    assert succeeded_days(out) == DAYS[:3]


def test_one_run_with_a_logical_date_fills_the_placeholder_and_records_the_day(models, tmp_path):
    pattern = dated_inputs(tmp_path / "in", days=DAYS[:1])
    out = tmp_path / "out"
    res = backfill(models, out, pattern, "--logical-date", DAYS[0])
    assert res.code == 0, res.stderr[-3000:]
    assert res.json["logical_date"] == DAYS[0]
    assert log_lines(out)[-1]["logical_date"] == DAYS[0]
    report = json.loads((Path(res.json["run_dir"]) / "report.json").read_text())
    assert report["logical_date"] == DAYS[0]
    ledger = [json.loads(x) for x in (out / "ledger.jsonl").read_text().splitlines()]
    assert {x["logical_date"] for x in ledger} == {DAYS[0]}
    # The ledger outlives prune: a backfill still knows the day is done.
    assert run_cli("jobs.runs", "prune", "--output-dir", out, "--keep", "0").code == 0
    again = backfill(models, out, pattern, "--backfill", f"{DAYS[0]}..{DAYS[0]}")
    assert again.code == 0 and again.json["runs"][0]["status"] == "already_scored"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--input", "in/{date}"], ["{date}", "--logical-date", "--backfill"]),
        (["--input", "in/", "--backfill", RANGE], ["--backfill needs {date}"]),
        (["--input", "in/{date}", "--backfill", "2026-11-05..2026-11-01"], ["before"]),
        (["--input", "in/{date}", "--backfill", RANGE, "--logical-date", DAYS[0]], ["leave out"]),
        (["--input", "in/", "--force"], ["--force only goes with --backfill"]),
        (["--input", "in/", "--logical-date", "1 Nov 2026"], ["YYYY-MM-DD"]),
    ],
)
def test_a_backfill_asked_wrongly_is_a_usage_error_in_one_sentence(models, tmp_path, args, words):
    from jobs.score import main

    res = run_main(main, ["--models-dir", models, "--output-dir", tmp_path / "out", *args])
    assert_failed(res, 2, *words)
    assert not (tmp_path / "out" / "runs").exists()


def test_each_backfill_run_tells_lineage_its_day_as_nominal_time(models, tmp_path):
    pattern = dated_inputs(tmp_path / "in", days=DAYS[:2])
    events_file = tmp_path / "events.jsonl"
    res = backfill(
        models,
        tmp_path / "out",
        pattern,
        "--backfill",
        "2026-11-01..2026-11-02",
        "--openlineage-file",
        events_file,
    )
    assert res.code == 0, res.stderr[-3000:]
    events = [json.loads(x) for x in events_file.read_text().splitlines()]
    nominal = {
        e["run"]["runId"]: e["run"]["facets"]["nominalTime"]["nominalStartTime"] for e in events
    }
    assert sorted(set(nominal.values())) == ["2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"]


def test_a_glob_with_the_day_in_it_finds_the_days_files_and_no_input_elsewhere(models, tmp_path):
    dated_inputs(tmp_path / "in", days=DAYS[:1])
    out = tmp_path / "out"
    pattern = str(tmp_path / "in" / "{date}" / "*.csv")
    res = backfill(models, out, pattern, "--backfill", "2026-11-01..2026-11-02")
    assert res.code == 0, res.stderr[-3000:]
    assert [r["status"] for r in res.json["runs"]] == ["succeeded", "no_input"]
    assert succeeded_days(out) == DAYS[:1]
