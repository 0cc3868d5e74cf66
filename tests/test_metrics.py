"""Prometheus textfile metrics (batch.ops.metrics) and the alert rules (promtool), without a model."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from batch.ops.metrics import outcome_from_run, write_scheduler_metrics, write_score_metrics
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


def report(**changes) -> dict:
    """A report.json as the scorer writes it (the fields the metrics read)."""
    rep = {
        "run_id": "20260301T020000Z-abc123",
        "status": "succeeded",
        "model_version": "v3",
        "rows_read": 1000,
        "rows_scored": 990,
        "rows_rejected": 10,
        "reject_fraction": 0.01,
        "out_of_range": {"rows": 7},
        "drift": {"differs_markedly": False},
        "prediction_summary": {"mean": 22.5},
        "metrics": {"mse": 40.0, "mae": 5.0, "rmse": 6.3, "rows": 990, "interval_coverage": 0.91},
    }
    rep.update(changes)
    return rep


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
            drift={"differs_markedly": True},
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
    assert second["batch_score_interval_coverage"].samples == []  # no true prices this time
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
    assert early["run_id"] is None and early["model_version"] is None
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
