"""Every OpenLineage event the jobs emit, checked against the official specification (2-0-2) and
the JSON Schema of every facet it carries, offline (tests/data/openlineage); each input dataset's
own schema; the standard facets; nominalTime from a real scheduler."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from batch.ops.lineage.facets import SCHEMA_FILES
from tests.helpers import FAST_FIT, REPO, run_main

SPEC_DIR = REPO / "tests" / "data" / "openlineage"
SPEC_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
SAMPLE = REPO / "sample_inputs"
ADDED = {"source_file", "source_row", "predicted_median_price_k", "model_version", "run_id"}


def _registry() -> Registry:
    """The spec, the standard facets and our own facets' schemas, each under its $id; a $ref to
    anything else is unresolvable (nothing is fetched)."""
    paths = [SPEC_DIR / "OpenLineage.json", *sorted((SPEC_DIR / "facets").glob("*.json"))]
    resources = []
    for path in [*paths, *SCHEMA_FILES]:
        contents = json.loads(path.read_text())
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


REGISTRY = _registry()


def errors(instance: object, ref: str) -> list[str]:
    validator = Draft202012Validator(
        {"$ref": ref}, registry=REGISTRY, format_checker=FormatChecker()
    )
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def facets_of(event: dict) -> list[tuple[str, str, dict]]:
    """(where, key, facet) for every facet of an event: run, job, datasets, input and output."""
    found = [("run", k, f) for k, f in event["run"].get("facets", {}).items()]
    found += [("job", k, f) for k, f in event["job"].get("facets", {}).items()]
    for side, extra in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        for i, ds in enumerate(event.get(side, [])):
            for group in ("facets", extra):
                found += [(f"{side}[{i}].{group}", k, f) for k, f in ds.get(group, {}).items()]
    return found


def spec_errors(event: dict) -> list[str]:
    """What the spec and each facet's own schema say is wrong with one event (empty: valid)."""
    problems = [f"event: {e}" for e in errors(event, SPEC_URL)]
    if event.get("schemaURL") != f"{SPEC_URL}#/$defs/RunEvent":
        problems.append(f"event: names {event.get('schemaURL')!r}, not the 2-0-2 RunEvent")
    for where, key, facet in facets_of(event):
        url = facet.get("_schemaURL", "")
        base = url.split("#")[0]
        try:
            declared = REGISTRY.contents(base).get("properties", {})
        except Exception:  # not a schema we hold: the test cannot check it, so it fails
            problems.append(f"{where}.{key}: no schema held for {url!r}")
            continue
        if key not in declared:
            problems.append(f"{where}.{key}: its schema names the facet {sorted(declared)}")
        problems += [f"{where}.{key}: {e}" for e in errors(facet, url)]
        problems += [f"{where}: {e}" for e in errors({key: facet}, base)]
    return problems


def events_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def score(models: Path, out: Path, *inputs, extra=()) -> tuple[int, dict, list[dict]]:
    from jobs.score import main

    events = out.parent / f"{out.name}-events.jsonl"
    args = ["--models-dir", models, "--output-dir", out, "--openlineage-file", events]
    for entry in inputs:
        args += ["--input", entry]
    res = run_main(main, [*args, *extra])
    return res.code, res.json, events_of(events) if events.exists() else []


def train(models: Path, tmp_path: Path, *extra) -> tuple[int, dict, list[dict]]:
    from jobs.train import main

    events = tmp_path / "train-events.jsonl"
    res = run_main(
        main,
        ["--models-dir", models, *FAST_FIT, "--no-promote", "--openlineage-file", events, *extra],
    )
    return res.code, res.json, events_of(events) if events.exists() else []


def shifted_feed(tmp_path: Path) -> Path:
    """34 rows of the north sample with 1.5 rooms more: --on-drift fail exits 8 on it."""
    import pandas as pd

    north = pd.read_csv(SAMPLE / "suburbs_north.csv")
    north["rm"] = pd.to_numeric(north["rm"], errors="coerce") + 1.5
    path = tmp_path / "shifted.csv"
    north.dropna(subset=["rm"]).head(34).to_csv(path, index=False)
    return path


# -- the validator itself ------------------------------------------------------------------------


def test_the_validator_finds_what_the_spec_forbids():
    good = {
        "eventType": "START",
        "eventTime": "2026-03-01T02:00:01+00:00",
        "run": {"runId": "0195c5b5-6f2b-7d3c-8f2e-3b9a1c2d4e5f", "facets": {}},
        "job": {"namespace": "n", "name": "score", "facets": {}},
        "producer": "urn:house-price-batch",
        "schemaURL": f"{SPEC_URL}#/$defs/RunEvent",
    }
    assert spec_errors(good) == []
    nominal = {
        "_producer": "urn:house-price-batch",
        "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json"
        "#/$defs/NominalTimeRunFacet",
    }
    bad = json.loads(json.dumps(good))
    bad["run"]["facets"]["nominalTime"] = nominal  # without its required nominalStartTime
    bad["job"]["facets"]["jobType"] = {**nominal, "_schemaURL": "https://example.org/x.json"}
    bad["eventTime"] = "yesterday"
    found = "\n".join(spec_errors(bad))
    assert "nominalStartTime" in found
    assert "no schema held for 'https://example.org/x.json'" in found
    assert "eventTime" in found
    renamed = json.loads(json.dumps(good))
    renamed["run"]["facets"]["nominal"] = {**nominal, "nominalStartTime": "2026-03-01T02:00:00Z"}
    assert "its schema names the facet ['nominalTime']" in "\n".join(spec_errors(renamed))


# -- every event of the runs, against the spec ---------------------------------------------------


def test_every_score_event_validates_success_budget_and_drift(models, tmp_path):
    runs = {
        "succeeded": score(models, tmp_path / "ok", SAMPLE),
        "over budget": score(
            models,
            tmp_path / "budget",
            _write(tmp_path / "bad.csv", "rm,medv\n6,20\n7,\nx,30\n"),
            extra=["--target-column", "medv"],
        ),
        "drifted": score(
            models, tmp_path / "drift", shifted_feed(tmp_path), extra=["--on-drift", "fail"]
        ),
    }
    codes = {name: code for name, (code, _, _) in runs.items()}
    assert codes == {"succeeded": 0, "over budget": 5, "drifted": 8}
    for name, (_, _, events) in runs.items():
        kinds = [e["eventType"] for e in events]
        assert kinds == (["START", "COMPLETE"] if name == "succeeded" else ["START", "FAIL"])
        for event in events:
            assert spec_errors(event) == [], f"{name} {event['eventType']}"
            run_facets, job = event["run"]["facets"], event["job"]["facets"]
            assert job["jobType"]["processingType"] == "BATCH"
            assert job["jobType"]["integration"] == "house-price-batch"
            assert job["jobType"]["jobType"] == "JOB"
            assert run_facets["processing_engine"]["name"] == "local"
            assert "nominalTime" not in run_facets  # not a scheduled run
    budget = runs["over budget"][2][-1]
    assert "errorMessage" in budget["run"]["facets"]
    data = budget["inputs"][0]
    metrics = data["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 3 and metrics["fileCount"] == 1
    assert metrics["columnMetrics"]["rm"] == {"nullCount": 0, "count": 3}
    assert metrics["columnMetrics"]["medv"] == {"nullCount": 1, "count": 1}
    assertions = {
        a["assertion"]: a for a in data["inputFacets"]["dataQualityAssertions"]["assertions"]
    }
    assert assertions["reject_budget"]["success"] is False
    assert assertions["reject_budget"]["column"] == "rm"
    assert assertions["drift"]["success"] is True
    by_reason = data["facets"]["houseprice_batch"]["properties"]["rejects_by_reason"]
    assert by_reason == {"missing": 0, "not_a_number": 1, "non_finite": 0, "out_of_domain": 0}
    drift = runs["drifted"][2][-1]["inputs"][0]["inputFacets"]["dataQualityAssertions"]
    verdicts = {a["assertion"]: (a["success"], a["severity"]) for a in drift["assertions"]}
    assert verdicts == {"reject_budget": (True, "error"), "drift": (False, "error")}


def test_every_train_event_validates_and_the_model_links_train_to_score(models, tmp_path):
    code, summary, events = train(models, tmp_path)
    assert code == 0
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    for event in events:
        assert spec_errors(event) == [], event["eventType"]
        assert event["job"]["facets"]["jobType"]["processingType"] == "BATCH"
        assert event["run"]["facets"]["processing_engine"]["name"] == "keras"
    trained = events[-1]["outputs"][0]
    code, _, failed = train(models, tmp_path / "f", "--data", tmp_path / "no-such.csv")
    assert code == 3
    assert [e["eventType"] for e in failed] == ["START", "FAIL"]
    for event in failed:
        assert spec_errors(event) == [], event["eventType"]
    # The version train wrote is the dataset a run scoring with it reads.
    code, _, scored = score(
        models, tmp_path / "out", SAMPLE, extra=["--model-version", summary["version"]]
    )
    assert code == 0
    model_input = scored[-1]["inputs"][-1]
    assert (model_input["namespace"], model_input["name"]) == (
        trained["namespace"],
        trained["name"],
    )


# -- each input's own schema ---------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _own_columns(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        return pq.read_schema(path).names
    return pacsv.read_csv(path).column_names


def _facet(dataset: dict) -> list[tuple[str, str]]:
    return [(f["name"], f["type"]) for f in dataset["facets"]["schema"]["fields"]]


def _parquet_types(run_dir: Path) -> dict[str, str]:
    part = sorted((run_dir / "predictions.parquet").glob("*.parquet"))[0]
    return {f.name: str(f.type) for f in pq.read_schema(part)}


def test_the_sample_inputs_list_their_own_columns_with_the_output_types(models, tmp_path):
    code, summary, events = score(models, tmp_path / "out", SAMPLE)
    assert code == 0
    written = _parquet_types(Path(summary["run_dir"]))
    for event in events:  # START (the plan's types) and COMPLETE (the written ones) agree
        files = [d for d in event["inputs"] if "schema" in d["facets"]]
        assert sorted(Path(d["name"]).name for d in files) == [
            "suburbs_north.csv",
            "suburbs_south.parquet",
        ]
        for data in files:
            own = _own_columns(Path(data["name"]))
            assert _facet(data) == [(c, written[c]) for c in own]
            assert not ADDED & {n for n, _ in _facet(data)}
    facets = {
        Path(d["name"]).name: _facet(d) for d in events[-1]["inputs"] if "schema" in d["facets"]
    }
    types = dict(facets["suburbs_north.csv"])
    assert types["crim"] == types["rm"] == "double"
    assert types["tax"] == "int64"  # whole numbers in the CSV
    assert types["suburb"] == "string"
    predictions, rejects = events[-1]["outputs"]
    assert _facet(predictions) == list(written.items())
    assert _facet(rejects) == [
        ("source_file", "string"),
        ("source_row", "int64"),
        ("raw_value", "string"),
        ("reason", "string"),
    ]


def test_a_parquet_and_a_csv_copy_of_one_file_give_the_same_facet(models, tmp_path):
    north = SAMPLE / "suburbs_north.csv"
    # A Parquet copy of the data as the CSV's run scored it: its own columns, written types.
    code, summary, alone_csv = score(models, tmp_path / "csv", north)
    assert code == 0
    part = sorted((Path(summary["run_dir"]) / "predictions.parquet").glob("*.parquet"))[0]
    copy = tmp_path / "copies" / "suburbs_north.parquet"
    copy.parent.mkdir()
    pq.write_table(pq.read_table(part, columns=_own_columns(north)), copy)
    # A copy whose text columns are large strings (as pandas writes them) reads alike too.
    big = tmp_path / "copies" / "north_large.parquet"
    table = pq.read_table(copy)
    pq.write_table(
        table.cast(
            pa.schema(
                [
                    pa.field(f.name, pa.large_string()) if f.type == pa.string() else f
                    for f in table.schema
                ]
            )
        ),
        big,
    )
    shutil.copy(north, tmp_path / "copies" / "suburbs_north.csv")

    _, _, alone_parquet = score(models, tmp_path / "b", copy)
    code, _, together = score(models, tmp_path / "c", tmp_path / "copies")
    assert code == 0
    expected = _facet(alone_csv[-1]["inputs"][0])
    assert _facet(alone_parquet[-1]["inputs"][0]) == expected
    datasets = [d for d in together[-1]["inputs"] if "schema" in d["facets"]]
    assert len(datasets) == 3
    assert all(_facet(d) == expected for d in datasets)


# -- nominalTime ---------------------------------------------------------------------------------


def test_latest_fire_is_the_cron_time_just_passed():
    from batch.schedule import cron

    daily = cron.trigger("0 2 * * *", "UTC")
    at = dt.datetime.fromisoformat
    hour = dt.timedelta(hours=1)
    assert cron.latest_fire(daily, at("2026-03-01T02:00:00.004+00:00"), hour) == at(
        "2026-03-01T02:00:00+00:00"
    )
    assert cron.latest_fire(daily, at("2026-03-01T04:00:00+00:00"), hour) is None
    fast = cron.trigger("*/3 * * * * *", "UTC")
    assert cron.latest_fire(fast, at("2026-03-01T02:00:05.5+00:00"), hour) == at(
        "2026-03-01T02:00:03+00:00"
    )


def test_a_scheduled_runs_events_carry_its_fire_time(models, tmp_path, write_csv):
    from batch.schedule import heartbeat
    from tests.scheduler_process import started_schedulers

    write_csv("a.csv", "rm\n6\n")
    events_file = tmp_path / "events.jsonl"
    with started_schedulers() as start:
        s = start(models, tmp_path / "out", tmp_path / "in", "--openlineage-file", events_file)

        due: set[dt.datetime] = set()  # every next fire APScheduler announced (heartbeat)

        def scheduled() -> list[dict]:
            beat = heartbeat.read_heartbeat(tmp_path / "out")
            if beat is not None and beat.next_run_at is not None:
                due.add(dt.datetime.fromisoformat(beat.next_run_at))
            found = events_file.exists() and events_of(events_file)
            return [e for e in found or [] if "nominalTime" in e["run"]["facets"]]

        s.wait_for(lambda: len(scheduled()) >= 4, what="two scheduled runs' events")
        assert s.stop() == 0
    events = events_of(events_file)
    first = [e for e in events if "nominalTime" not in e["run"]["facets"]]
    # The run at start (none ever ran) stands for no scheduled time.
    assert [e["eventType"] for e in first] == ["START", "COMPLETE"]
    by_run: dict[str, set[str]] = {}
    for event in events:
        assert spec_errors(event) == []
        nominal = event["run"]["facets"].get("nominalTime")
        if nominal is None:
            continue
        fire = dt.datetime.fromisoformat(nominal["nominalStartTime"].replace("Z", "+00:00"))
        sent = dt.datetime.fromisoformat(event["eventTime"])
        # The fire time APScheduler announced before firing (every 3 s, on the second), at or
        # before the run began.
        assert fire in due, (fire, sorted(due))
        assert fire.second % 3 == 0 and fire.microsecond == 0, fire
        assert fire <= sent < fire + dt.timedelta(seconds=60)
        by_run.setdefault(event["run"]["runId"], set()).add(nominal["nominalStartTime"])
    assert all(len(times) == 1 for times in by_run.values())  # START and its end agree
    times = sorted(t for ts in by_run.values() for t in ts)
    assert len(set(times)) == len(times) >= 2  # each fire its own time


def test_nominal_time_and_the_dask_engine_as_the_events_carry_them(tmp_path):
    import importlib.metadata

    from batch.ops.lineage import DatasetRef, Lineage
    from batch.settings import load_settings

    path = tmp_path / "events.jsonl"
    settings = load_settings(
        {
            "nominal_time": "2026-03-01T03:00:00+01:00",
            "engine": "dask",
            "openlineage_file": path,
        },
        _env_file=None,
    )
    run = Lineage.from_settings(settings, "score", "20260301T020000Z-abc123")
    run.start([DatasetRef.file("in/north.csv", schema=[("rm", "double")])])
    run.fail("stopped")
    events = events_of(path)
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    for event in events:
        assert spec_errors(event) == []
        facets = event["run"]["facets"]
        assert facets["nominalTime"]["nominalStartTime"] == "2026-03-01T02:00:00Z"
        engine = facets["processing_engine"]
        assert engine["name"] == "dask"
        assert engine["version"] == importlib.metadata.version("dask")


def test_a_nominal_time_without_an_offset_exits_2_in_one_sentence(tmp_path):
    from jobs.score import main

    res = run_main(main, ["--output-dir", tmp_path, "--nominal-time", "2026-03-01T02:00:00"])
    assert res.code == 2
    assert "nominal_time" in res.stderr and "timezone" in res.stderr
    assert "Traceback" not in res.stderr
