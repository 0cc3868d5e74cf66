"""The typed documents (batch.core.documents) against the documents the product really writes.

Round trips: every JSON document of a real registry (the session's trained model, promoted and
rolled back once) and of a real output folder (four real scoring runs, and a real scheduler's
heartbeat) parses, dumps to the same keys in the same order, and parses again to an equal model.
Then the refusals: damaged documents name their field; older ones are migrated.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from batch.core.documents import (
    SCHEMA_VERSION,
    Aliases,
    AliasMove,
    Document,
    DocumentError,
    ModelMetadata,
    RunLine,
    RunReport,
    SchedulerHeartbeat,
    dump,
    parse_alias_move,
    parse_aliases,
    parse_heartbeat,
    parse_metadata,
    parse_report,
    parse_run_line,
)
from batch.core.documents._base import parse
from tests.helpers import REPO


def same_shape(a: Any, b: Any, where: str = "") -> None:
    """`a` and `b` are equal JSON values whose objects list their keys in the same order."""
    if isinstance(a, dict):
        assert isinstance(b, dict), where
        assert list(a) == list(b), f"key order differs at {where or 'the top'}"
        for key in a:
            same_shape(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same_shape(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def round_trip(kind: type[Document], text: str, where: str) -> Document:
    """parse -> dump -> parse: equal models, and the dump is the original plus schema_version."""
    first = parse(kind, text, where)
    written = dump(first)
    again = parse(kind, written, where)
    assert again == first
    assert dump(again) == written  # canonical: a second dump changes nothing
    original = json.loads(text)
    expected = {"schema_version": SCHEMA_VERSION, **original}
    if kind.sort_keys:
        expected = dict(sorted(expected.items()))
    same_shape(json.loads(written), expected)
    assert written.endswith("\n") != kind.line
    return first


# -- the real registry ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(trained, tmp_path_factory) -> Path:
    """The session's registry with a second version, promoted and rolled back (real commands)."""
    from jobs.models import main as models_main
    from tests.helpers import run_main

    root = tmp_path_factory.mktemp("documents") / "models"
    shutil.copytree(trained["models"], root)
    shutil.copytree(root / "v1", root / "v2")  # the same files: a second published version
    meta = json.loads((root / "v2" / "metadata.json").read_text())
    (root / "v2" / "metadata.json").write_text(json.dumps({**meta, "version": "v2"}, indent=2))
    for argv in (["promote", "v2"], ["rollback"]):
        res = run_main(models_main, ["--models-dir", root, *argv])
        assert res.code == 0, res.stderr[-2000:]
    return root


def test_every_real_metadata_json_round_trips(registry):
    texts = sorted(registry.glob("v*/metadata.json"))
    assert len(texts) == 2
    meta = round_trip(ModelMetadata, texts[0].read_text(), str(texts[0]))
    assert isinstance(meta, ModelMetadata)
    # The trainer of today writes every optional key.
    assert meta.interval is not None and meta.fold is not None and meta.baseline_mse is not None
    assert meta.fold.verified and meta.fold.model_sha256 == meta.model_sha256


def test_the_real_aliases_json_round_trips(registry):
    path = registry / "aliases.json"
    aliases = round_trip(Aliases, path.read_text(), str(path))
    assert isinstance(aliases, Aliases) and aliases.production == "v1"


def test_every_real_history_line_round_trips(registry):
    lines = (registry / "history.jsonl").read_text().splitlines()
    assert len(lines) == 3  # the trainer's first promotion, promote v2, rollback
    moves = [round_trip(AliasMove, line, "history.jsonl") for line in lines]
    assert [m.to for m in moves if isinstance(m, AliasMove)] == ["v1", "v2", "v1"]
    first = moves[0]
    assert isinstance(first, AliasMove) and first.from_ is None
    assert '"from": null' in dump(first)  # the Python name never reaches the file


# -- the real output folder -----------------------------------------------------------------------


def test_every_real_report_json_round_trips(scored_output):
    out = scored_output["output"]
    paths = sorted(out.glob("runs/*/report.json")) + sorted(out.glob("failed/*/report.json"))
    assert len(paths) == 3  # two successes, one over the reject budget
    reports = [round_trip(RunReport, p.read_text(), str(p)) for p in paths]
    failed = reports[-1]
    assert isinstance(failed, RunReport) and failed.failure is not None
    assert failed.failure.cause == "reject_budget"
    north = next(r for r in reports if isinstance(r, RunReport) and r.metrics is not None)
    assert north.metrics is not None and north.metrics.target_column == "medv"


def test_every_real_runs_jsonl_line_round_trips(scored_output):
    lines = (scored_output["output"] / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 4
    outcomes = [round_trip(RunLine, line, "runs.jsonl") for line in lines]
    codes = [o.exit_code for o in outcomes if isinstance(o, RunLine)]
    assert codes == [0, 3, 0, 5]
    missing = outcomes[1]
    assert isinstance(missing, RunLine) and missing.run_dir is None and missing.error


def test_a_real_scheduler_heartbeat_round_trips(settings, tmp_path):
    """The scheduler's own beat(), before a fire, after one and after a clean stop."""
    import datetime as dt

    from batch.schedule.heartbeat import HEARTBEAT
    from batch.schedule.scheduler import NightlyScorer

    scorer = NightlyScorer(settings(schedule="0 2 * * *"))
    path = tmp_path / "output" / HEARTBEAT
    scorer.beat()
    fresh = round_trip(SchedulerHeartbeat, path.read_text(), str(path))
    assert isinstance(fresh, SchedulerHeartbeat) and fresh.last_run_at is None
    scorer.heartbeat.update(last_run_at="2026-01-01T02:00:00+00:00", last_run_status="running")
    scorer.heartbeat.update(
        last_success_at="2026-01-01T02:00:00+00:00", last_run_status="succeeded"
    )
    scorer.heartbeat.update(
        last_run_exit_code=0, last_run_summary={"status": "succeeded", "rows": 3}
    )
    scorer.heartbeat.stopped_at = dt.datetime.now(dt.UTC)
    scorer.beat()
    done = round_trip(SchedulerHeartbeat, path.read_text(), str(path))
    assert isinstance(done, SchedulerHeartbeat) and done.stopped_at and done.next_run_at is None
    assert done.last_run_summary == {"status": "succeeded", "rows": 3}


# -- older documents ------------------------------------------------------------------------------


def test_metadata_from_before_bands_folds_and_versions_is_migrated(registry):
    meta = json.loads((registry / "v1" / "metadata.json").read_text())
    for key in ("interval", "fold", "baseline_mse", "schema_version"):
        meta.pop(key, None)
    old = parse_metadata(json.dumps(meta, indent=2), "models/v1/metadata.json")
    assert old.schema_version == 1
    assert old.interval is None and old.fold is None and old.baseline_mse is None
    written = json.loads(dump(old))
    assert "interval" not in written and "fold" not in written  # absent stays absent
    assert written["schema_version"] == 1


def test_a_report_from_the_first_scorer_is_migrated(scored_output):
    path = next(scored_output["output"].glob("runs/*/report.json"))
    report = json.loads(path.read_text())
    later = ("first_rejects", "target", "interval", "rejected_rooms", "warnings")
    for key in (*later, "phases_seconds", "failure", "schema_version"):
        report.pop(key, None)
    for item in report["inputs"]:
        for key in ("reject_fraction", "rooms_column", "target_column"):
            item.pop(key)
    old = parse_report(json.dumps(report), str(path))
    assert old.schema_version == 1 and old.target is None and old.failure is None
    assert old.inputs[0].rooms_column is None


def test_unknown_keys_are_carried_by_report_and_runs_lines(scored_output):
    path = next(scored_output["output"].glob("runs/*/report.json"))
    report = json.loads(path.read_text())
    report["added_later"] = {"by": "another tool"}
    report["drift"]["input"]["kurtosis"] = 3.1
    written = json.loads(dump(parse_report(json.dumps(report), "report.json")))
    assert written["added_later"] == {"by": "another tool"}
    assert written["drift"]["input"]["kurtosis"] == 3.1
    line = json.loads((scored_output["output"] / "runs.jsonl").read_text().splitlines()[0])
    written = json.loads(dump(parse_run_line(json.dumps({**line, "host": "n1"}), "runs.jsonl")))
    assert written["host"] == "n1"


# -- damaged documents ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_meta(registry) -> dict[str, Any]:
    return json.loads((registry / "v1" / "metadata.json").read_text())


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    *parents, last = path.split(".")
    target = doc
    for key in parents:
        target = target[key]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return doc


DELETE = object()
NAN = float("nan")

DAMAGED_METADATA = [
    ("weight", NAN, "field 'weight' must be a finite number (got 'nan')"),
    ("bias", "heavy", "field 'bias' must be a number (got 'heavy')"),
    ("weight", True, "field 'weight' must be a number"),
    ("metrics.test_mse", float("inf"), "field 'metrics.test_mse' must be a finite number"),
    ("metrics.test_mse", DELETE, "field 'metrics.test_mse' is missing"),
    ("model_sha256", DELETE, "field 'model_sha256' is missing"),
    ("interval.test_mean_width", -1.0, "field 'interval.test_mean_width' must be >= 0"),
    ("interval.quantile", -0.5, "field 'interval.quantile' must be >= 0"),
    ("interval.scale.floor", -1.0, "field 'interval.scale.floor' must be >= 0"),
    ("interval.scale", [1, 2], "field 'interval.scale' must be an object"),
    ("interval.level", 1.5, "field 'interval.level' must be < 1"),
    ("fold.weight", NAN, "field 'fold.weight' must be a finite number"),
    ("created_at", "2026-01-01T00:00:00", "field 'created_at' must be a UTC time"),
    ("created_at", "yesterday", "field 'created_at' must be an ISO-8601 time"),
    ("version", "3", "field 'version' must name a model version"),
    ("training_sample.rm", [1.0], "field 'training_sample' must hold as many prices"),
    ("data.rows_test", 10.5, "field 'data.rows_test' must be a whole number"),
    ("wieght", 1.0, "field 'wieght' is not a field of this document"),
    ("schema_version", "1", "field 'schema_version' must be a whole number"),
]


@pytest.mark.parametrize(("field", "value", "words"), DAMAGED_METADATA)
def test_damaged_metadata_is_refused_naming_the_field(real_meta, field, value, words):
    text = json.dumps(_set(real_meta, field, value))  # NaN and Infinity as Python writes them
    with pytest.raises(DocumentError) as caught:
        parse_metadata(text, "models/v3/metadata.json")
    message = str(caught.value)
    assert message.startswith("metadata.json at models/v3/metadata.json is damaged: "), message
    assert words in message, message
    assert message.endswith("--model-version)") and "\n" not in message


def test_the_example_sentence(real_meta):
    with pytest.raises(DocumentError) as caught:
        parse_metadata(json.dumps(_set(real_meta, "weight", NAN)), "models/v3/metadata.json")
    assert str(caught.value) == (
        "metadata.json at models/v3/metadata.json is damaged: field 'weight' must be a finite "
        "number (got 'nan'); re-train or restore it (or score with another version: "
        "--model-version)"
    )


@pytest.mark.parametrize(
    ("parser", "text", "words"),
    [
        (parse_metadata, '{"weight": 0.5, "bias"', "it is not valid JSON (Expecting ':'"),
        (parse_metadata, "", "it is not valid JSON (Expecting value"),
        (parse_metadata, "[1, 2, 3]", "it should be a JSON object, not a list"),
        (parse_metadata, b"\xff\xfe{}", "it is not UTF-8 text"),
        (parse_aliases, '{"production": "v1", "staging": "v2"}', "field 'staging' is not a"),
        (parse_aliases, '{"production": 1}', "field 'production' must be text"),
        (parse_aliases, '{"production": "latest"}', "field 'production' must name a model"),
        (parse_aliases, "{}", "field 'production' is missing"),
        (parse_alias_move, '{"time": "2026-01-01T00:00:00+00:00"}', "field 'alias' is missing"),
        (parse_heartbeat, '{"pid": "x"}', "field 'pid' must be a whole number"),
    ],
)
def test_damaged_documents_are_refused(parser, text, words):
    with pytest.raises(DocumentError) as caught:
        parser(text, "somewhere")
    assert " at somewhere " in str(caught.value) and words in str(caught.value)


def test_damaged_report_and_run_line_name_nested_fields(scored_output):
    out = scored_output["output"]
    report = json.loads(next(out.glob("runs/*/report.json")).read_text())
    bad = _set(report, "prediction_summary.count", -1)
    with pytest.raises(DocumentError, match=r"field 'prediction_summary.count' must be >= 0"):
        parse_report(json.dumps(bad), "report.json")
    report["inputs"][0]["rows_read"] = "many"
    with pytest.raises(DocumentError, match=r"field 'inputs\[0\].rows_read' must be a whole"):
        parse_report(json.dumps(report), "report.json")
    line = json.loads((out / "runs.jsonl").read_text().splitlines()[0])
    bad = {**line, "started_at": "2026-13-01T00:00:00+00:00"}
    with pytest.raises(DocumentError, match=r"runs.jsonl line 7 is damaged: field 'started_at'"):
        parse_run_line(json.dumps(bad), "runs.jsonl", 7)


@pytest.mark.parametrize("parser", [parse_metadata, parse_report, parse_aliases, parse_run_line])
def test_a_document_from_a_newer_product_is_refused(parser):
    with pytest.raises(DocumentError) as caught:
        parser('{"schema_version": 2, "anything": "at all"}', "there")
    assert "schema_version 2" in str(caught.value)
    assert "a newer version of the product wrote it" in str(caught.value)


def test_aliases_without_schema_version_are_migrated_and_written_sorted():
    aliases = parse_aliases('{"production": "v4"}\n', "models/aliases.json")
    assert aliases.schema_version == 1
    assert dump(aliases) == '{\n  "production": "v4",\n  "schema_version": 1\n}\n'


# -- the reference page ---------------------------------------------------------------------------


def test_the_committed_reference_page_is_what_tools_schemas_writes(tmp_path):
    target = tmp_path / "documents.md"
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "schemas"), "--output", str(target)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    committed = (REPO / "docs" / "reference" / "documents.md").read_text()
    stale = "docs/reference/documents.md is stale: run tools/schemas"
    assert committed == target.read_text(), stale
