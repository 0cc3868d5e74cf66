"""Object storage end to end against a real S3 protocol server (moto in server mode, with auth).

Every job runs as a real subprocess that finds the store the standard way (AWS_* environment
variables); nothing mocks the client.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tests.helpers import FAST_FIT, REPO, one_error_sentence, run_cli
from tests.s3_helpers import client, free_port, keys, moto_server

BUCKET = "house-prices"
SAMPLE_CSV = REPO / "sample_inputs" / "suburbs_north.csv"


@pytest.fixture(scope="module")
def store():
    """A moto server for this module, its AWS_* variables set in this process (jobs inherit them)."""
    with moto_server() as env:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        from batch.storage import fs

        fs.forget_clients()
        s3 = client(env)
        s3.create_bucket(Bucket=BUCKET)
        try:
            yield env
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            fs.forget_clients()


@pytest.fixture(scope="module")
def inputs(store):
    """The same suburbs as CSV, gzipped CSV and Parquet under s3://BUCKET/in/, plus a stray file."""
    s3 = client(store)
    data = SAMPLE_CSV.read_bytes()
    s3.put_object(Bucket=BUCKET, Key="in/a.csv", Body=data)
    s3.put_object(Bucket=BUCKET, Key="in/b.csv.gz", Body=gzip.compress(data))
    sink = pa.BufferOutputStream()
    pq.write_table(pacsv.read_csv(SAMPLE_CSV), sink)
    s3.put_object(Bucket=BUCKET, Key="in/c.parquet", Body=sink.getvalue().to_pybytes())
    s3.put_object(Bucket=BUCKET, Key="in/notes.txt", Body=b"not an input")
    rows = pacsv.read_csv(SAMPLE_CSV).num_rows
    return {"prefix": f"s3://{BUCKET}/in", "rows_per_file": rows}


@pytest.fixture(scope="module")
def s3_models(store):
    """One short training from s3:// data into an s3:// registry (v1 = production)."""
    s3 = client(store)
    # Training data like Boston's (rooms around 6.3, $K prices on a line with noise), made here
    # so the test needs nothing beside the clone.
    rng = np.random.default_rng(11)
    rm = rng.normal(6.3, 0.7, 506).clip(3.6, 8.8).round(3)
    medv = (9.1 * rm - 34.7 + rng.normal(0, 5, 506)).clip(5, 50).round(1)
    body = "rm,medv\n" + "".join(f"{r},{m}\n" for r, m in zip(rm, medv))
    s3.put_object(Bucket=BUCKET, Key="train/boston.csv", Body=body.encode())
    models = f"s3://{BUCKET}/models"
    out = run_cli(
        "jobs.train", "--models-dir", models, "--data", f"s3://{BUCKET}/train/boston.csv", *FAST_FIT
    )
    assert out.code == 0, out.stderr
    assert out.json["version"] == "v1" and out.json["promoted"] is True
    return models


@pytest.fixture(scope="module")
def local_models(s3_models, store, tmp_path_factory):
    """The s3:// registry downloaded to a local folder (for tests that break only one location)."""
    folder = tmp_path_factory.mktemp("local") / "models"
    s3 = client(store)
    for key in keys(store, BUCKET, "models/"):
        target = folder / key.removeprefix("models/")
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(BUCKET, key, str(target))
    return folder


def score(*args, env: dict | None = None):
    return run_cli("jobs.score", *args, env=env, timeout=180)


def read_key(store, key: str) -> bytes:
    return client(store).get_object(Bucket=BUCKET, Key=key)["Body"].read()


# -- train, score, read back, --new-only ------------------------------------------------------------


def test_train_and_score_on_s3_then_read_the_run_back(store, inputs, s3_models):
    out_dir = f"s3://{BUCKET}/out"
    result = score("--models-dir", s3_models, "--input", inputs["prefix"], "--output-dir", out_dir)
    assert result.code == 0, result.stderr
    summary = result.json
    run_id = summary["run_id"]
    assert summary["run_dir"] == f"{out_dir}/runs/{run_id}"
    assert read_key(store, "out/LATEST").decode().strip() == run_id
    assert "notes.txt" in result.stderr  # the stray file is ignored with a log line
    names = keys(store, BUCKET, f"out/runs/{run_id}/")
    assert f"out/runs/{run_id}/_SUCCESS" in names
    assert not keys(store, BUCKET, "out/.staging/")  # staging removed after publishing

    import pandas as pd

    # Readers use the bucket the ordinary way: pandas and pyarrow through s3fs.
    frame = pd.read_parquet(f"{out_dir}/runs/{run_id}/predictions.parquet")
    assert len(frame) == summary["rows_scored"]
    assert set(frame["source_file"]) == {
        f"{inputs['prefix']}/a.csv",
        f"{inputs['prefix']}/b.csv.gz",
        f"{inputs['prefix']}/c.parquet",
    }
    csv = pd.read_csv(f"{out_dir}/runs/{run_id}/predictions.csv")
    assert len(csv) == len(frame)
    assert summary["rows_scored"] + summary["rows_rejected"] == 3 * inputs["rows_per_file"]
    report = json.loads(read_key(store, f"out/runs/{run_id}/report.json"))
    assert {i["format"] for i in report["inputs"]} == {"csv", "parquet"}
    # The operators' files live in the bucket too.
    log_lines = read_key(store, "out/runs.jsonl").decode().splitlines()
    assert json.loads(log_lines[-1])["run_id"] == run_id
    assert b"batch_score_last_success_timestamp_seconds" in read_key(
        store, "out/metrics/batch_score.prom"
    )
    assert run_id in read_key(store, "out/index.html").decode()

    # --new-only: the same content was scored, so nothing new (content hashes, as on disk).
    again = score(
        "--models-dir",
        s3_models,
        "--input",
        inputs["prefix"],
        "--output-dir",
        out_dir,
        "--new-only",
    )
    assert again.code == 0, again.stderr
    assert again.json["status"] == "nothing_new"
    assert again.json["skipped_inputs"] == 3


def test_dask_engine_reads_and_writes_s3(store, inputs, s3_models):
    out_dir = f"s3://{BUCKET}/dask-out"
    result = score(
        "--models-dir",
        s3_models,
        "--input",
        f"{inputs['prefix']}/*.c*",
        "--output-dir",
        out_dir,
        "--engine",
        "dask",
        "--dask-workers",
        "2",
    )
    assert result.code == 0, result.stderr
    run_id = result.json["run_id"]
    import pandas as pd

    frame = pd.read_parquet(f"{out_dir}/runs/{run_id}/predictions.parquet")
    assert set(frame["source_file"]) == {
        f"{inputs['prefix']}/a.csv",
        f"{inputs['prefix']}/b.csv.gz",
    }
    assert len(frame) == result.json["rows_scored"]
    assert not keys(store, BUCKET, f"dask-out/runs/{run_id}/parts/")  # CSV parts joined


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_late_non_number_on_s3_keeps_the_column_text_exactly(store, s3_models, engine):
    # Numbers until row 140,000 (so the plan decides float64), then 'n/a': the Parquet written
    # before is rewritten on the store with the column's text from the CSV.
    forms = ["6.50", " 7", "+3", "1e5", "", "0.30000000000000004"]
    price = [forms[i % len(forms)] for i in range(150_000)]
    price[140_000] = "n/a"
    result, table = _score_column_on_s3(store, s3_models, engine, "late", "price", price)
    assert "rewrote the Parquet files" in result.stderr
    assert table.schema.field("price").type == pa.string()
    # Text exactly as the CSV had it, an empty cell as null (as in every output, whatever the
    # input format: one glob over CSV and Parquet feeds reads the same nulls).
    assert table.column("price").to_pylist() == [p if p != "" else None for p in price]
    assert not [k for k in keys(store, BUCKET, f"late-out-{engine}/") if k.endswith(".text")]


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_late_decimal_on_s3_widens_the_int64_column_to_float64(store, s3_models, engine):
    # Whole numbers until row 380,000 (so the plan decides int64; a batch read holds about
    # 1 MB of rows), then 6.5: the Parquet written before is rewritten on the store as float64.
    forms = ["12", " 7", "+3", "-4", "", "0"]
    n = [forms[i % len(forms)] for i in range(400_000)]
    n[380_000] = "6.5"
    result, table = _score_column_on_s3(store, s3_models, engine, "wide", "n", n)
    assert "are float64 throughout" in result.stderr
    assert table.schema.field("n").type == pa.float64()
    assert table.column("n").to_pylist() == [float(v) if v != "" else None for v in n]
    assert not [k for k in keys(store, BUCKET, f"wide-out-{engine}/") if k.endswith(".wide")]


def _score_column_on_s3(store, s3_models, engine, name, column, values):
    """A CSV of rm and `column` (`values`) at s3://BUCKET/<name>-<engine>/a.csv, scored with
    the engine into s3://BUCKET/<name>-out-<engine> in batches of 10,000 rows: the result (exit 0
    checked) and the run's predictions table."""
    body = f"rm,{column}\n" + "".join(f"{5 + i % 30 / 10},{v}\n" for i, v in enumerate(values))
    client(store).put_object(Bucket=BUCKET, Key=f"{name}-{engine}/a.csv", Body=body.encode())
    out_dir = f"s3://{BUCKET}/{name}-out-{engine}"
    extra = ["--engine", "dask", "--dask-workers", "1"] if engine == "dask" else []
    where = f"s3://{BUCKET}/{name}-{engine}/a.csv"
    result = score(
        "--models-dir",
        s3_models,
        "--input",
        where,
        "--output-dir",
        out_dir,
        "--chunk-rows",
        "10000",
        *extra,
    )
    assert result.code == 0, result.stderr
    table = pq.read_table(
        f"{out_dir}/runs/{result.json['run_id']}/predictions.parquet".removeprefix("s3://"),
        filesystem=_arrow_s3(),
    )
    return result, table


def _arrow_s3():
    from batch.storage import fs

    return fs.arrow(fs.path(f"s3://{BUCKET}/x"))[0]


# -- the lock ------------------------------------------------------------------------------------------


def test_lease_lock_is_exclusive_and_an_expired_one_is_taken_over(store):
    from batch.storage import fs
    from batch.storage.lease import LeaseLock

    where = fs.path(f"s3://{BUCKET}/locks/one.lock")
    first, second = LeaseLock(where, lease_seconds=30), LeaseLock(where, lease_seconds=30)
    assert first.acquire(blocking=False, holder={"pid": 1, "host": "a", "run_id": "r1"})
    try:
        assert not second.acquire(blocking=False, holder={"pid": 2, "host": "b"})
        assert second.holder()["run_id"] == "r1"
    finally:
        first.release()
    assert not fs.path(f"s3://{BUCKET}/locks/one.lock").exists()

    # A holder killed without releasing: its lease lapses and the next contender takes over.
    stale = {
        "pid": 3,
        "host": "gone",
        "run_id": "dead",
        "lease_expires_at": "2000-01-01T00:00:00+00:00",
    }
    client(store).put_object(Bucket=BUCKET, Key="locks/one.lock", Body=json.dumps(stale).encode())
    contenders = [LeaseLock(where, lease_seconds=30) for _ in range(4)]
    won = []
    threads = [
        threading.Thread(target=lambda c=c: won.append(c.acquire(blocking=False, holder={})))
        for c in contenders
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False, False, False, True]  # exactly one takes the expired lock over
    for c in contenders:
        c.release()


def test_lease_is_renewed_while_the_holder_lives(store):
    from batch.storage import fs
    from batch.storage.lease import LeaseLock

    where = fs.path(f"s3://{BUCKET}/locks/renew.lock")
    lock = LeaseLock(where, lease_seconds=2)
    assert lock.acquire(blocking=False, holder={"run_id": "long"})
    try:
        time.sleep(3)  # longer than the lease: only renewal keeps it
        other = LeaseLock(where, lease_seconds=2)
        assert not other.acquire(blocking=False, holder={})
        lock.verify()
    finally:
        lock.release()


def test_second_run_on_a_locked_s3_output_exits_6_naming_the_holder(store, inputs, s3_models):
    from batch.storage import fs
    from batch.storage.lease import LeaseLock

    holder = LeaseLock(fs.path(f"s3://{BUCKET}/locked/.lock"))
    assert holder.acquire(
        blocking=False,
        holder={"pid": 4242, "host": "elsewhere", "run_id": "r-held", "started_at": "earlier"},
    )
    try:
        result = score(
            "--models-dir",
            s3_models,
            "--input",
            f"{inputs['prefix']}/a.csv",
            "--output-dir",
            f"s3://{BUCKET}/locked",
        )
    finally:
        holder.release()
    assert result.code == 6, result.stderr
    sentence = one_error_sentence(result.stderr)
    assert "pid 4242 on elsewhere" in sentence and "lease until" in sentence
    assert not keys(store, BUCKET, "locked/runs/")


# -- a run killed mid-way ------------------------------------------------------------------------------


def test_sigkill_mid_run_leaves_no_visible_run_and_the_rerun_cleans_up(store, s3_models, tmp_path):
    s3 = client(store)
    rows = 300_000  # long enough that the kill lands while the run is staged
    table = pa.table(
        {
            "rm": pa.array([f"{5 + (i % 300) / 100:.2f}" for i in range(rows)]),
            "age": pa.array([str(i % 97) for i in range(rows)]),
        }
    )
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink)
    s3.put_object(Bucket=BUCKET, Key="big/suburbs.csv", Body=sink.getvalue().to_pybytes())
    out_dir = f"s3://{BUCKET}/killed"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobs.score",
            "--models-dir",
            s3_models,
            "--input",
            f"s3://{BUCKET}/big/suburbs.csv",
            "--output-dir",
            out_dir,
            "--chunk-rows",
            "20000",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not keys(store, BUCKET, "killed/.staging/"):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    leftovers = keys(store, BUCKET, "killed/.staging/")
    assert leftovers  # the killed run's staged objects are still there
    assert not any(k.endswith("/_SUCCESS") for k in keys(store, BUCKET, "killed/runs/"))
    assert "killed/LATEST" not in keys(store, BUCKET, "killed/")

    # The lock of the killed run is still live (lease not expired): wait it out like an
    # operator would rather than shortening it, by rewriting it as expired.
    lock = json.loads(read_key(store, "killed/.lock"))
    lock["lease_expires_at"] = "2000-01-01T00:00:00+00:00"
    s3.put_object(Bucket=BUCKET, Key="killed/.lock", Body=json.dumps(lock).encode())
    rerun = score(
        "--models-dir",
        s3_models,
        "--input",
        f"s3://{BUCKET}/big/suburbs.csv",
        "--output-dir",
        out_dir,
    )
    assert rerun.code == 0, rerun.stderr
    assert "removing" in rerun.stderr
    assert not keys(store, BUCKET, "killed/.staging/")
    runs = {k.split("/")[2] for k in keys(store, BUCKET, "killed/runs/")}
    assert runs == {rerun.json["run_id"]}


def test_a_publish_killed_half_way_is_invisible_and_removed(store, inputs, s3_models):
    """A copy into runs/<id>/ that died before _SUCCESS: readers skip it, the next run removes it."""
    from batch.storage import fs
    from batch.storage.rundir import OutputDir

    s3 = client(store)
    for name in ("predictions.csv", "report.json"):
        s3.put_object(Bucket=BUCKET, Key=f"half/.staging/20000101T000000Z-dead00/{name}", Body=b"x")
        s3.put_object(Bucket=BUCKET, Key=f"half/runs/20000101T000000Z-dead00/{name}", Body=b"x")
    assert OutputDir(fs.path(f"s3://{BUCKET}/half")).successful_runs() == []
    result = score(
        "--models-dir",
        s3_models,
        "--input",
        f"{inputs['prefix']}/a.csv",
        "--output-dir",
        f"s3://{BUCKET}/half",
    )
    assert result.code == 0, result.stderr
    assert not keys(store, BUCKET, "half/runs/20000101T000000Z-dead00/")
    assert not keys(store, BUCKET, "half/.staging/")


# -- the registry ----------------------------------------------------------------------------------------


def test_registry_on_s3_versions_honour_the_marker_and_aliases_update_conditionally(
    store, s3_models
):
    from batch.model.registry import Registry
    from batch.storage import conditional as objectstore
    from batch.storage import fs

    registry = Registry(fs.path(s3_models))
    assert registry.versions() == ["v1"]
    client(store).put_object(Bucket=BUCKET, Key="models/v2/model.keras", Body=b"partial")
    assert registry.versions() == ["v1"]  # no metadata.json yet: not a version

    # Many writers at once: no update is lost (If-Match, retried on conflict).
    counter = registry.root / "counter.json"

    def bump() -> None:
        for _ in range(5):
            objectstore.update_json(counter, lambda c: {"n": c["n"] + 1}, {"n": 0})

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert json.loads(counter.read_text())["n"] == 20
    for i in range(3):
        objectstore.append_line(registry.root / "lines.jsonl", json.dumps({"i": i}))
    assert [
        json.loads(x)["i"] for x in (registry.root / "lines.jsonl").read_text().splitlines()
    ] == [0, 1, 2]
    client(store).delete_object(Bucket=BUCKET, Key="models/counter.json")
    client(store).delete_object(Bucket=BUCKET, Key="models/lines.jsonl")
    client(store).delete_object(Bucket=BUCKET, Key="models/v2/model.keras")

    history = run_cli("jobs.models", "history", "--models-dir", s3_models)
    assert history.code == 0, history.stderr
    assert "v1" in history.stdout


# -- wrong key, missing bucket, unreachable endpoint -----------------------------------------------------


@pytest.mark.parametrize("broken, code", [("input", 3), ("registry", 4), ("output", 7)])
def test_a_wrong_key_is_one_sentence_with_the_locations_exit_code(
    store, inputs, s3_models, local_models, tmp_path, broken, code
):
    args = {
        "input": str(SAMPLE_CSV),
        "registry": str(local_models),
        "output": str(tmp_path / "out"),
    }
    args[broken] = {
        "input": f"{inputs['prefix']}/a.csv",
        "registry": s3_models,
        "output": f"s3://{BUCKET}/wrong-key",
    }[broken]
    wrong = {"AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    result = score(
        "--models-dir",
        args["registry"],
        "--input",
        args["input"],
        "--output-dir",
        args["output"],
        env=wrong,
    )
    assert result.code == code, result.stderr
    sentence = one_error_sentence(result.stderr)
    assert "access denied" in sentence and "AWS_SECRET_ACCESS_KEY" in sentence
    assert (
        "not-the-secret" not in result.stderr
        and store["AWS_SECRET_ACCESS_KEY"] not in result.stderr
    )


def test_a_missing_bucket_is_named(store, local_models, tmp_path):
    result = score(
        "--models-dir",
        local_models,
        "--input",
        str(SAMPLE_CSV),
        "--output-dir",
        "s3://no-such-bucket/out",
    )
    assert result.code == 7, result.stderr
    assert "'no-such-bucket' does not exist" in one_error_sentence(result.stderr)
    data = run_cli(
        "jobs.train",
        "--models-dir",
        str(tmp_path / "m"),
        "--data",
        "s3://no-such-bucket/train.csv",
        *FAST_FIT,
    )
    assert data.code == 3, data.stderr
    assert "'no-such-bucket' does not exist" in one_error_sentence(data.stderr)


def test_an_unreachable_endpoint_fails_fast(store, local_models, tmp_path):
    dead = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    result = score(
        "--models-dir",
        local_models,
        "--input",
        str(SAMPLE_CSV),
        "--output-dir",
        f"s3://{BUCKET}/out",
        env=dead,
    )
    assert result.code == 7, result.stderr
    assert "cannot be reached" in one_error_sentence(result.stderr)
    assert "AWS_ENDPOINT_URL" in one_error_sentence(result.stderr)


def test_a_backfill_over_dated_prefixes_skips_a_missing_day_and_then_scores_nothing(
    store, s3_models
):
    s3 = client(store)
    for day in ("2026-11-01", "2026-11-03"):
        s3.put_object(Bucket=BUCKET, Key=f"daily/{day}/a.csv", Body=SAMPLE_CSV.read_bytes())
    args = ["--models-dir", s3_models, "--output-dir", f"s3://{BUCKET}/backfill"]
    args += ["--input", f"s3://{BUCKET}/daily/{{date}}/", "--backfill", "2026-11-01..2026-11-03"]
    first = score(*args)
    assert first.code == 0, first.stderr[-3000:]
    assert [r["status"] for r in first.json["runs"]] == ["succeeded", "no_input", "succeeded"]
    lines = [json.loads(x) for x in read_key(store, "backfill/runs.jsonl").decode().splitlines()]
    assert [(x["logical_date"], x["status"]) for x in lines] == [
        ("2026-11-01", "succeeded"),
        ("2026-11-02", "no_input"),
        ("2026-11-03", "succeeded"),
    ]
    again = score(*args)
    assert again.code == 0, again.stderr[-3000:]
    assert (again.json["scored"], again.json["skipped"], again.json["no_input"]) == (0, 2, 1)
