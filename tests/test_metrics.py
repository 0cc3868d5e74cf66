"""Prometheus textfile metrics (batch.ops.metrics) and the alert rules (promtool), without a model."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from batch.core.documents import parse_report
from batch.core.documents.report import RunReport
from batch.ops.metrics import (
    outcome_from_run,
    report_coverage,
    write_scheduler_metrics,
    write_score_metrics,
)
from tests.helpers import REPO

SCORE_NAMES = {
    "batch_score_last_run_timestamp_seconds",
    "batch_score_last_success_timestamp_seconds",
    "batch_score_last_exit_code",
    "batch_score_duration_seconds",
    "batch_score_rows",
    "batch_score_reject_fraction",
    "batch_score_drift",
    "batch_score_interval_coverage",
    "batch_score_warnings",
    "batch_score_comparable",
    "batch_model_info",
}
RULES = REPO / "deploy" / "prometheus"
T0 = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)


def parse(path: Path) -> dict:
    return {f.name: f for f in text_string_to_metric_families(path.read_text())}


def value(families: dict, name: str, **labels) -> float:
    samples = [
        s for s in families[name].samples if all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(samples) == 1, (name, labels, families[name].samples)
    return samples[0].value


def report(**changes) -> RunReport:
    """A report.json as the scorer writes it (a whole RunReport; the metrics read a few fields)."""
    rep = {
        "run_id": "20260301T020000Z-abc123",
        "status": "succeeded",
        "started_at": "2026-03-01T02:00:00+00:00",
        "finished_at": "2026-03-01T02:00:42+00:00",
        "duration_seconds": 42.0,
        "model_version": "v3",
        "model": {
            **dict.fromkeys(["created_at", "weight", "bias", "metrics", "ols_reference"]),
            **dict.fromkeys(["feature_range", "hyperparameters", "training_data"]),
            "version": "v3",
            "model_sha256": None,
        },
        "inputs": [],
        "skipped_inputs": [],
        "rows_read": 1000,
        "rows_scored": 990,
        "rows_rejected": 10,
        "reject_fraction": 0.01,
        "max_reject_fraction": 0.05,
        "rejects_by_reason": {"missing": 10},
        "out_of_range": {"rows": 7, "below": 3, "above": 4, "training_range": None},
        "prediction_summary": {
            **{"count": 990, "mean": 22.5, "min": 10.0, "p50": 22.0, "max": 40.0},
            **{"estimated": [], "sample_size": 990},
        },
        "metrics": {"mse": 40.0, "mae": 5.0, "rmse": 6.3, "rows": 990, "interval_coverage": 0.91},
        "drift": {
            "input": {"count": 990},
            "training": {
                **dict.fromkeys(["count", "mean", "std", "min", "max"]),
                "share_outside_training_range": 0.0,
            },
            "differs_markedly": False,
            "warnings": [],
        },
        "settings": {
            "domain": {"min_exclusive": 0.0, "max_inclusive": 20.0},
            **{"feature_column": None, "engine": "local", "chunk_rows": 1000},
            **{"new_only": False, "model_version_requested": "production"},
        },
        "prediction_path": "fold",
    }
    rep.update(changes)
    return parse_report(json.dumps(rep), "report.json")


def test_report_coverage_reads_the_interval_coverage_the_scorer_writes():
    assert report_coverage(report()) == pytest.approx(0.91)
    assert report_coverage(report(metrics=None)) is None
    no_band = report(metrics={"mse": 1.0, "mae": 1.0, "rmse": 1.0, "rows": 3})
    assert report_coverage(no_band) is None


def test_success_then_exit_5_keeps_the_last_success_and_carries_the_exit_code(tmp_path):
    ok = outcome_from_run(
        {
            "status": "succeeded",
            "run_id": "20260301T020000Z-abc123",
            "rows_scored": 990,
            "rows_rejected": 10,
            "model_version": "v3",
            "run_dir": str(tmp_path / "out" / "runs" / "20260301T020000Z-abc123"),
        },
        report(),
        0,
        T0,
        T0 + dt.timedelta(seconds=42),
    )
    path = write_score_metrics(tmp_path / "metrics", ok)
    assert path == tmp_path / "metrics" / "batch_score.prom"
    first = parse(path)
    assert set(first) == SCORE_NAMES
    assert value(first, "batch_score_last_success_timestamp_seconds") == T0.timestamp() + 42
    assert value(first, "batch_score_duration_seconds") == 42
    assert value(first, "batch_score_rows", outcome="read") == 1000
    assert value(first, "batch_score_rows", outcome="out_of_range") == 7
    assert value(first, "batch_score_interval_coverage") == pytest.approx(0.91)
    assert value(first, "batch_model_info", version="v3") == 1

    later = T0 + dt.timedelta(days=1)
    bad = outcome_from_run(
        {
            "status": "reject_budget_exceeded",
            "exit_code": 5,
            "error": "60 of 100 rows ...",
            "run_id": "20260302T020000Z-def456",
            "rows_scored": 40,
            "rows_rejected": 60,
            "model_version": "v3",
        },
        report(
            run_id="20260302T020000Z-def456",
            status="failed",
            rows_read=100,
            rows_scored=40,
            rows_rejected=60,
            reject_fraction=0.6,
            drift={**report().drift.model_dump(), "differs_markedly": True},
            metrics=None,
        ),
        5,
        later,
        later + dt.timedelta(seconds=3),
    )
    write_score_metrics(tmp_path / "metrics", bad)
    second = parse(path)
    assert set(second) == SCORE_NAMES
    assert value(second, "batch_score_last_exit_code") == 5
    assert value(second, "batch_score_last_success_timestamp_seconds") == T0.timestamp() + 42
    assert value(second, "batch_score_last_run_timestamp_seconds") == later.timestamp() + 3
    assert value(second, "batch_score_reject_fraction") == pytest.approx(0.6)
    assert value(second, "batch_score_drift") == 1
    # The drifted run is not comparable: the quality gauge keeps the last comparable value.
    assert value(second, "batch_score_comparable") == 0
    assert value(second, "batch_score_interval_coverage") == pytest.approx(0.91)
    # Never a timestamp on a sample, and no temporary file left beside it.
    assert all(s.timestamp is None for f in second.values() for s in f.samples)
    assert [p.name for p in (tmp_path / "metrics").iterdir()] == ["batch_score.prom"]


def test_a_run_without_report_or_earlier_success(tmp_path):
    early = outcome_from_run(
        {"status": "failed", "exit_code": 3, "error": "no input files"},
        None,
        3,
        T0,
        T0 + dt.timedelta(seconds=1),
    )
    assert early.run_id is None and early.model_version is None
    families = parse(write_score_metrics(tmp_path, early))
    assert set(families) == SCORE_NAMES
    assert value(families, "batch_score_last_success_timestamp_seconds") == 0  # never
    assert value(families, "batch_score_last_exit_code") == 3
    assert families["batch_model_info"].samples == []


def test_a_damaged_previous_file_is_replaced(tmp_path):
    (tmp_path / "batch_score.prom").write_text("this is { not prometheus\n")
    bad = outcome_from_run({"status": "failed"}, None, 4, T0, T0)
    families = parse(write_score_metrics(tmp_path, bad))
    assert value(families, "batch_score_last_success_timestamp_seconds") == 0


def test_scheduler_metrics_up_then_clean_stop(tmp_path):
    nxt = T0 + dt.timedelta(hours=24)
    path = write_scheduler_metrics(tmp_path, True, T0, nxt)
    up = parse(path)
    assert value(up, "batch_scheduler_up") == 1
    assert value(up, "batch_scheduler_next_fire_timestamp_seconds") == nxt.timestamp()
    assert value(up, "batch_scheduler_heartbeat_timestamp_seconds") == T0.timestamp()
    down = parse(write_scheduler_metrics(tmp_path, False, T0, None))
    assert value(down, "batch_scheduler_up") == 0
    assert down["batch_scheduler_next_fire_timestamp_seconds"].samples == []


# -- the alert rules --------------------------------------------------------------------------------


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip(
            "promtool not found: install Debian's prometheus package "
            "(apt-get install prometheus; .ci/run does)"
        )
    return path


def test_promtool_checks_the_rules():
    res = subprocess.run(
        [promtool(), "check", "rules", str(RULES / "alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "6 rules found" in res.stdout


def test_promtool_unit_tests_pass_and_catch_a_changed_rule(tmp_path):
    res = subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    # The unit tests really pin the rules: a 20-hour threshold instead of 26 fails them.
    shutil.copy(RULES / "alerts_test.yml", tmp_path)
    text = (RULES / "alerts.yml").read_text()
    assert "> 26 * 3600" in text
    (tmp_path / "alerts.yml").write_text(text.replace("> 26 * 3600", "> 20 * 3600"))
    res = subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode != 0
    assert "BatchScoreNoRecentSuccess" in res.stdout + res.stderr


def test_every_metric_the_rules_use_is_written():
    import re

    text = (RULES / "alerts.yml").read_text()
    used = set(re.findall(r"\b(batch_[a-z_]+)\b(?!\.prom)", text))  # not the file names
    scheduler = {
        "batch_scheduler_up",
        "batch_scheduler_heartbeat_timestamp_seconds",
        "batch_scheduler_next_fire_timestamp_seconds",
    }
    assert used and used <= SCORE_NAMES | scheduler, used - SCORE_NAMES - scheduler


def test_the_outcome_reads_an_older_report_and_refuses_a_damaged_one(tmp_path, caplog):
    """After a run, its report.json is read as a RunReport: an older one (no schema_version) is
    migrated; a damaged one gives no report data and one warning, never a made-up value."""
    from batch.core.documents import dump
    from batch.ops.monitoring import _report_of

    folder = tmp_path / "runs" / "20260301T020000Z-abc123"
    folder.mkdir(parents=True)
    older = json.loads(dump(report()))
    older.pop("schema_version")
    (folder / "report.json").write_text(json.dumps(older))
    read = _report_of(tmp_path, {"run_dir": str(folder)})
    assert read is not None and read.rows_read == 1000 and read.schema_version == 1

    older["out_of_range"] = {"rows": -7}
    (folder / "report.json").write_text(json.dumps(older))
    assert _report_of(tmp_path, {"run_dir": str(folder)}) is None
    damaged = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(damaged) == 1 and "out_of_range" in damaged[0]
    assert _report_of(tmp_path, {"status": "failed"}) is None  # no folder: no report
