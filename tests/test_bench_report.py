"""The benchmark's reading of the scorer's phase timings (report.json + summary) and their note."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.measure import parse_summary, scorer_phases
from benchmarks.report import phase_note


def _run_dir(tmp_path: Path, report: object) -> Path:
    run = tmp_path / "run-20260101T000000Z-abc123"
    run.mkdir()
    (run / "report.json").write_text(json.dumps(report))
    return run


def test_phases_come_from_report_json_in_order_then_publish_from_the_summary(tmp_path):
    run = _run_dir(
        tmp_path,
        {
            "status": "succeeded",
            "phases_seconds": {
                "plan": 0.4,
                "model": 1.25,
                "stream": 20,
                "finalize": 0.3,
                "report": 0.9,
            },
        },
    )
    summary = parse_summary(
        [
            json.dumps(
                {
                    "status": "succeeded",
                    "run_dir": str(run),
                    "phases_seconds": {
                        "plan": 0.4,
                        "model": 1.25,
                        "stream": 20,
                        "finalize": 0.3,
                        "report": 0.9,
                        "publish": 0.05,
                    },
                }
            )
        ]
    )

    phases = scorer_phases(Path(summary["run_dir"]), summary)

    assert list(phases) == ["plan", "model", "stream", "finalize", "report", "publish"]
    assert phases["stream"] == 20.0 and phases["publish"] == 0.05


def test_phase_names_are_whatever_the_scorer_records(tmp_path):
    run = _run_dir(tmp_path, {"phases_seconds": {"warm_up": 2.0, "score": 3.5}})

    assert scorer_phases(run, {}) == {"warm_up": 2.0, "score": 3.5}


def test_an_older_scorer_without_phases_gives_none(tmp_path):
    run = _run_dir(tmp_path, {"status": "succeeded", "rows_scored": 10})

    assert scorer_phases(run, {"status": "succeeded"}) == {}
    assert scorer_phases(tmp_path / "deleted", {}) == {}
    assert scorer_phases(None, {}) == {}


def test_a_missing_report_still_shows_the_summarys_phases(tmp_path):
    summary = {"phases_seconds": {"plan": 1.0, "publish": 0.1}}

    assert scorer_phases(tmp_path / "gone", summary) == {"plan": 1.0, "publish": 0.1}


def test_entries_that_are_not_durations_are_left_out(tmp_path):
    run = _run_dir(
        tmp_path,
        {
            "phases_seconds": {
                "plan": 1.0,
                "stream": "fast",
                "report": None,
                "finalize": -1,
                "exit": True,
            }
        },
    )
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "report.json").write_text("{not json")

    assert scorer_phases(run, {"phases_seconds": ["plan", 1]}) == {"plan": 1.0}
    assert scorer_phases(tmp_path / "broken", {}) == {}


def test_the_note_lists_the_phases_and_what_they_leave_out():
    run = {
        "case": "a",
        "format": "parquet",
        "rows": 10_000_000,
        "wall_s": 25.0,
        "phases": {"plan": 0.5, "model": 1.0, "stream": 18.0, "report": 0.5, "publish": 0.0},
    }

    note = phase_note(run)

    assert note.startswith("(a) parquet 10M scorer phases: plan 0.50s, model 1.00s, stream 18.00s")
    assert "publish 0.00s" in note
    assert "outside them 5.00s" in note


def test_the_note_shows_a_dash_when_the_scorer_records_no_phases():
    run = {"case": "d", "format": "csv", "rows": 200_000, "wall_s": 9.0, "phases": {}}

    assert phase_note(run).startswith("(d) csv 200k scorer phases: – ")
