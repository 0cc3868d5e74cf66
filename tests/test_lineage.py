"""OpenLineage events (batch.ops.lineage) to a real HTTP receiver on 127.0.0.1 and to a file."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from batch.ops.lineage import (
    NAMESPACE,
    DatasetRef,
    Lineage,
    arrow_schema,
    run_uuid,
    score_inputs,
    score_outputs,
)
from tests.helpers import FAST_FIT, REPO, run_main


class Receiver:
    """An OpenLineage endpoint: keeps every JSON body POSTed to it, in order."""

    def __init__(self) -> None:
        events = self.events = []
        paths = self.paths = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                events.append(json.loads(body))
                paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # keep the test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(models: Path, *extra):
    from jobs.train import main

    return run_main(main, ["--models-dir", models, *FAST_FIT, "--no-promote", *extra])


def test_training_emits_start_then_complete_with_matching_run_ids(models):
    with Receiver() as receiver:
        res = train(models, "--openlineage-url", receiver.url)
    assert res.code == 0, res.stderr
    summary = res.json
    assert [e["eventType"] for e in receiver.events] == ["START", "COMPLETE"]
    assert receiver.paths == ["/api/v1/lineage"] * 2
    start, complete = receiver.events
    assert start["run"]["runId"] == complete["run"]["runId"] == run_uuid("train", summary["run_id"])
    for event in receiver.events:
        assert (event["job"]["namespace"], event["job"]["name"]) == (NAMESPACE, "train")
        assert event["job"]["facets"]["jobType"]["processingType"] == "BATCH"
        assert event["run"]["facets"]["houseprice_batch"]["runId"] == summary["run_id"]
    data = complete["inputs"][0]
    assert data["namespace"] == "file" and data["name"].endswith("boston_housing.npz")
    assert [f["name"] for f in data["facets"]["schema"]["fields"]] == ["rm", "medv"]
    model = complete["outputs"][0]
    assert model["name"] == str((models / summary["version"]).resolve())
    assert model["facets"]["houseprice_batch"]["properties"]["model_version"] == summary["version"]


def test_failed_training_emits_start_then_fail(models, tmp_path):
    with Receiver() as receiver:
        res = train(models, "--data", tmp_path / "no-such.csv", "--openlineage-url", receiver.url)
    assert res.code == 3
    assert [e["eventType"] for e in receiver.events] == ["START", "FAIL"]
    start, fail = receiver.events
    assert start["run"]["runId"] == fail["run"]["runId"]
    assert "no-such.csv" in fail["run"]["facets"]["errorMessage"]["message"]
    assert fail["inputs"][0]["name"] == str((tmp_path / "no-such.csv").resolve())


def test_a_down_endpoint_never_fails_the_run(models):
    res = train(models, "--openlineage-url", f"http://127.0.0.1:{closed_port()}")
    assert res.code == 0, res.stderr
    assert "OpenLineage START event for train run" in res.stderr
    assert "could not be sent" in res.stderr


def test_score_run_events_carry_datasets_row_counts_and_fail(tmp_path):
    class File:
        def __init__(self, path, sha256):
            self.path, self.sha256 = path, sha256

    run_id = "20260301T020000Z-abc123"
    with Receiver() as receiver:
        ok = Lineage("score", run_id, url=receiver.url)
        import pyarrow as pa

        schema = arrow_schema(pa.schema([("suburb", pa.string()), ("rm", pa.float64())]))
        assert schema == [("suburb", "string"), ("rm", "double")]
        ok.start(score_inputs([File("in/north.csv", "ab" * 32)], schema, tmp_path / "models", "v2"))
        ok.complete(score_outputs(tmp_path / "output" / "runs" / run_id, 990, 10))
        failed = Lineage("score", "20260302T020000Z-def456", url=receiver.url)
        failed.start([DatasetRef.file("in/broken.csv")])
        failed.fail("60 of 100 rows were rejected")
    kinds = [
        (e["eventType"], e["run"]["facets"]["houseprice_batch"]["runId"]) for e in receiver.events
    ]
    assert kinds == [
        ("START", run_id),
        ("COMPLETE", run_id),
        ("START", "20260302T020000Z-def456"),
        ("FAIL", "20260302T020000Z-def456"),
    ]
    complete = receiver.events[1]
    assert [i["name"] for i in complete["inputs"]] == [
        str(Path("in/north.csv").resolve()),
        str((tmp_path / "models" / "v2").resolve()),
    ]
    assert complete["inputs"][0]["facets"]["schema"]["fields"][1]["name"] == "rm"
    counts = {
        Path(o["name"]).name: o["outputFacets"]["outputStatistics"]["rowCount"]
        for o in complete["outputs"]
    }
    assert counts == {"predictions.parquet": 990, "rejects.csv": 10}
    assert receiver.events[0]["run"]["runId"] != receiver.events[2]["run"]["runId"]


def test_events_to_a_file_one_json_per_line(tmp_path):
    path = tmp_path / "lineage" / "events.jsonl"
    run = Lineage("score", "20260301T020000Z-abc123", file=path)
    run.start([DatasetRef.file("in/north.csv")])
    run.complete([DatasetRef.file("out/predictions.parquet", rows=5)])
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert events[1]["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 5


def test_unset_emits_nothing_and_imports_nothing():
    code = (
        "import sys\n"
        "from batch.ops.lineage import Lineage, DatasetRef\n"
        "run = Lineage('score', 'r1')\n"
        "run.start([DatasetRef.file('x.csv')]); run.complete([]); run.fail('x')\n"
        "print(run.enabled, any(m.startswith('openlineage') for m in sys.modules))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert res.stdout.strip() == "False False", res.stderr


def test_a_url_that_is_not_http_is_a_settings_error():
    from batch.core.errors import ConfigError
    from batch.settings import load_settings

    with pytest.raises(ConfigError, match="openlineage_url"):
        load_settings({"openlineage_url": "marquez:5000"}, _env_file=None)


def test_the_scorer_emits_start_then_complete_or_fail_with_row_counts(models, tmp_path):
    from jobs.score import main

    good = tmp_path / "in" / "a.csv"
    good.parent.mkdir()
    good.write_text("rm\n6\n7\nx\n")
    with Receiver() as receiver:
        res = run_main(
            main,
            [
                "--models-dir",
                models,
                "--output-dir",
                tmp_path / "out",
                "--input",
                good,
                "--max-reject-fraction",
                1,
                "--openlineage-url",
                receiver.url,
            ],
        )
    assert res.code == 0, res.stderr
    assert [e["eventType"] for e in receiver.events] == ["START", "COMPLETE"]
    start, complete = receiver.events
    assert (
        start["run"]["runId"] == complete["run"]["runId"] == run_uuid("score", res.json["run_id"])
    )
    assert start["inputs"][0]["name"] == str(good.resolve())
    rows = {
        Path(o["name"]).name: o["outputFacets"]["outputStatistics"]["rowCount"]
        for o in complete["outputs"]
    }
    assert rows == {"predictions.parquet": 2, "rejects.csv": 1}

    with Receiver() as receiver:
        res = run_main(
            main,
            [
                "--models-dir",
                models,
                "--output-dir",
                tmp_path / "out2",
                "--input",
                good,
                "--openlineage-url",
                receiver.url,
            ],
        )
    assert res.code == 5  # over the default reject budget
    assert [e["eventType"] for e in receiver.events] == ["START", "FAIL"]
    assert "budget" in receiver.events[1]["run"]["facets"]["errorMessage"]["message"]
