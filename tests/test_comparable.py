"""`comparable` everywhere: one rule (batch.core.comparable), the same verdict in report.json,
runs.jsonl, `jobs.runs list/show`, index.html and batch_score.prom, and a run that is not
comparable moves no trend point and no quality gauge."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from batch.core import comparable
from batch.core.documents import parse_run_line
from tests.helpers import run_cli
from tests.scoring_helpers import score
from tests.test_analysts import report_of, suburbs, write


def test_the_rule_units_and_drift_break_it_a_missing_target_does_not():
    flag = comparable.Flag
    ok = comparable.judge(
        in_training_units=None, drifted=False, warnings=[flag("target", "no column")]
    )
    assert (
        ok.comparable
        and ok.reasons == ()
        and ok.counts()
        == {
            "units": 0,
            "drift": 0,
            "target": 1,
        }
    )
    assert comparable.judge(in_training_units=True, drifted=False, warnings=[]).comparable
    units = comparable.judge(in_training_units=False, drifted=False, warnings=[])
    assert (units.comparable, units.reasons) == (False, ("units",))
    both = comparable.judge(in_training_units=False, drifted=True, warnings=[])
    assert both.reasons == ("units", "drift")
    assert comparable.in_words(False, both.reasons) == "no (units, drift)"
    assert comparable.in_words(None) == "-" and comparable.in_words(True) == "yes"


def figures(index: Path) -> dict[str, str]:
    """The trend charts of index.html: their alt text -> the embedded image."""
    html = index.read_text()
    return dict(
        re.findall(r"<img alt='([^']*)' src='data:image/(?:png|svg\+xml);base64,([^']+)'", html)
    )


def prom(out: Path) -> dict:
    text = (out / "metrics" / "batch_score.prom").read_text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_a_feed_in_dollars_is_flagged_everywhere_and_moves_no_trend(models, tmp_path):
    out = tmp_path / "out"
    good = suburbs(200, seed=1)
    first = score(models, out, write(tmp_path, "k.csv", good), extra=["--target-column", "medv"])
    assert first.code == 0, first.stderr[-2000:]
    assert first.json["comparable"] is True
    drift = first.json["drift"]
    assert drift["verdict"] == "no_marked_difference" and drift["n"] == 200
    assert drift["threshold"] == 0.001 and isinstance(drift["statistic"], float)
    assert report_of(first)["comparable"] is True
    before_figures = figures(out / "index.html")
    before_prom = prom(out)
    assert before_prom[("batch_score_comparable", ())] == 1

    dollars = suburbs(200, seed=2)
    dollars["medv"] = dollars["medv"] * 1000
    second = score(
        models, out, write(tmp_path, "d.csv", dollars), extra=["--target-column", "medv"]
    )
    assert second.code == 0, second.stderr[-2000:]
    assert second.json["comparable"] is False
    report = report_of(second)
    assert report["comparable"] is False
    verdict = report["comparability"]
    assert verdict["reasons"] == ["units"]
    assert [w["kind"] for w in verdict["warnings"]] == ["units"]

    # runs.jsonl: each line carries the verdict.
    lines = [parse_run_line(t, "runs.jsonl") for t in (out / "runs.jsonl").read_text().splitlines()]
    assert [line.comparable for line in lines] == [True, False]
    assert lines[1].comparable_reasons == ["units"] and lines[1].warning_kinds["units"] == 1

    # jobs.runs list (JSON and the table) and show.
    listed = run_cli("jobs.runs", "list", "--json", "--output-dir", out)
    assert listed.code == 0, listed.stderr
    verdicts = {r["run_id"]: r["comparable"] for r in json.loads(listed.stdout)}
    ids = [first.json["run_id"], second.json["run_id"]]
    assert verdicts == {ids[0]: True, ids[1]: False}
    table = run_cli("jobs.runs", "list", "--output-dir", out).stdout.splitlines()
    assert "comparable" in table[0].split()
    row = next(r for r in table if r.startswith(ids[1]))
    assert "no (units)" in row
    shown = run_cli("jobs.runs", "show", ids[1], "--output-dir", out).stdout
    assert "comparable: no (units)" in shown and "[units]" in shown

    # index.html: the row flagged in words and colour, never the green "ok".
    html = (out / "index.html").read_text()
    row_html = html[html.index(f"id='run-{ids[1]}'") :].split("</tr>")[0]
    assert "class='nc'" in row_html and "not comparable" in row_html
    assert "class='ok'" not in row_html and "no (units)" in row_html
    good_row = html[html.index(f"id='run-{ids[0]}'") :].split("</tr>")[0]
    assert "class='ok'" in good_row and "not comparable" not in good_row
    # ... and no trend point moved.
    assert figures(out / "index.html") == before_figures and before_figures

    # batch_score.prom: the last run is not comparable, its warnings by kind; the quality
    # gauge still shows the comparable run's coverage.
    after = prom(out)
    assert after[("batch_score_comparable", ())] == 0
    assert after[("batch_score_warnings", (("kind", "units"),))] == 1
    assert after[("batch_score_warnings", (("kind", "drift"),))] == 0
    coverage = ("batch_score_interval_coverage", ())
    assert after[coverage] == before_prom[coverage]
    assert report["metrics"]["interval_coverage"] != before_prom[coverage]


def test_an_older_runs_jsonl_line_is_migrated():
    old = {
        "run_id": "20260101T000000Z-abcdef",
        "status": "succeeded",
        "exit_code": 0,
        "error": None,
        "started_at": "2026-01-01T00:00:00+00:00",
        "finished_at": "2026-01-01T00:00:01+00:00",
        "duration_seconds": 1.0,
        "rows_read": 1,
        "rows_scored": 1,
        "rows_rejected": 0,
        "rows_out_of_range": 0,
        "reject_fraction": 0.0,
        "drift": True,
        "interval_coverage": None,
        "mse": None,
        "mean_prediction": 20.0,
        "model_version": "v1",
        "run_dir": "runs/20260101T000000Z-abcdef",
    }
    drifted = parse_run_line(json.dumps(old), "runs.jsonl", 1)
    assert drifted.comparable is False and drifted.comparable_reasons == ["drift"]
    calm = parse_run_line(json.dumps({**old, "drift": False}), "runs.jsonl", 2)
    assert calm.comparable is None and calm.warning_kinds == {}  # units unknown: no verdict
