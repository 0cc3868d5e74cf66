"""An object store that stops answering mid-run, through the real CLI against a moto S3 server
that the test pauses (SIGSTOP), kills and restarts: the run ends within its deadline plus 10 s
with the documented exit code and one sentence, publishes nothing, and the lock is free for
the next run (at the latest when its lease ends). A stop signal while the scorer waits on the
store ends the run within 10 s (exit 130)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.fault_helpers import (
    BUCKET,
    Scorer,
    big_csv,
    metrics_show_no_success,
    published,
    wait_for_key,
)
from tests.helpers import one_error_sentence
from tests.s3_helpers import client, keys, moto_process

TIMEOUT = 2  # --s3-timeout-s
LEASE = 4  # --s3-lease-seconds
# The longest one object-store call takes: three attempts at the deadline, plus back-off
# (batch.storage.location.call_deadline).
CALL_DEADLINE = 3 * TIMEOUT + 3


@pytest.fixture
def store():
    with moto_process() as (proc, env):
        client(env).create_bucket(Bucket=BUCKET)
        yield proc, env


def _args(models, data, out: str, metrics) -> list[object]:
    return [
        "--models-dir", models, "--input", data, "--output-dir", out,
        "--metrics-dir", metrics, "--s3-lease-seconds", LEASE, "--s3-timeout-s", TIMEOUT,
    ]  # fmt: skip


def _assert_unreachable(res, env) -> None:
    assert res.code == 7, (res.code, res.stderr[-3000:])
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    sentence = one_error_sentence(res.stderr)
    assert "cannot be reached" in sentence and "AWS_ENDPOINT_URL" in sentence, sentence
    assert "nothing was published" in sentence, sentence
    assert res.json["exit_code"] == 7


def _next_run_publishes(env, models, data, out: str, tmp_path) -> str:
    """The lock is free (at the latest once its lease ended): the next run publishes."""
    nxt = Scorer(tmp_path, "next", env, *_args(models, data, out, tmp_path / "m-next"))
    res = nxt.wait(timeout=180)
    assert res.code == 0, res.stderr[-3000:]
    return res.json["run_id"]


def test_a_store_paused_mid_run_ends_the_run_within_its_deadline(store, models, tmp_path):
    proc, env = store
    data = big_csv(tmp_path)
    out = f"s3://{BUCKET}/paused"
    scorer = Scorer(tmp_path, "paused", env, *_args(models, data, out, tmp_path / "m"))
    try:
        wait_for_key(env, "paused/.lock", scorer)
        os.kill(proc.pid, signal.SIGSTOP)  # accepts connections, never answers
        began = time.monotonic()
        res = scorer.wait(timeout=CALL_DEADLINE + 60)
        took = time.monotonic() - began
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    _assert_unreachable(res, env)
    assert took < CALL_DEADLINE + 10, took
    assert published(env, "paused") == (set(), None)
    metrics_show_no_success(tmp_path / "m", 7)
    time.sleep(LEASE)  # its lock could not be removed while the store was paused
    run_id = _next_run_publishes(env, models, data, out, tmp_path)
    assert published(env, "paused") == ({run_id}, run_id)
    assert not keys(env, BUCKET, "paused/.staging/")


def test_a_store_paused_for_less_than_its_deadline_costs_only_the_pause(store, models, tmp_path):
    proc, env = store
    data = big_csv(tmp_path)
    out = f"s3://{BUCKET}/blip"
    scorer = Scorer(tmp_path, "blip", env, *_args(models, data, out, tmp_path / "m"))
    try:
        wait_for_key(env, "blip/.lock", scorer)
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(TIMEOUT / 2)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    res = scorer.wait(timeout=180)
    assert res.code == 0, res.stderr[-3000:]
    assert published(env, "blip") == ({res.json["run_id"]}, res.json["run_id"])


def test_a_store_stopped_mid_run_then_restarted(store, models, tmp_path):
    """Killed mid-run: exit 7 at once (connection refused); restarted on the same port (moto
    keeps nothing: the bucket is made again), the next run takes the lock and publishes."""
    proc, env = store
    data = big_csv(tmp_path)
    out = f"s3://{BUCKET}/stopped"
    scorer = Scorer(tmp_path, "stopped", env, *_args(models, data, out, tmp_path / "m"))
    wait_for_key(env, "stopped/.lock", scorer)
    proc.kill()
    proc.wait()
    began = time.monotonic()
    res = scorer.wait(timeout=CALL_DEADLINE + 60)
    assert time.monotonic() - began < CALL_DEADLINE + 10
    _assert_unreachable(res, env)
    metrics_show_no_success(tmp_path / "m", 7)
    port = int(env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
    with moto_process(port) as (_, again):
        client(again).create_bucket(Bucket=BUCKET)
        assert published(again, "stopped") == (set(), None)
        run_id = _next_run_publishes(again, models, data, out, tmp_path)
        assert published(again, "stopped") == ({run_id}, run_id)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_while_waiting_on_the_store_ends_the_run_within_10_s(
    store, models, tmp_path, stop
):
    proc, env = store
    data = big_csv(tmp_path)
    out = f"s3://{BUCKET}/stop"
    scorer = Scorer(tmp_path, "stop", env, *_args(models, data, out, tmp_path / "m"))
    try:
        wait_for_key(env, "stop/.lock", scorer)
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(1)  # the scorer now waits on a call that will not be answered
        began = time.monotonic()
        scorer.proc.send_signal(stop)
        res = scorer.wait(timeout=60)
        took = time.monotonic() - began
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert res.code == 130, (res.code, res.stderr[-3000:])
    assert took < 10, took
    assert "Traceback" not in res.stderr
    assert "interrupted" in one_error_sentence(res.stderr)
    assert published(env, "stop") == (set(), None)
    metrics_show_no_success(tmp_path / "m", 130)
    time.sleep(LEASE)  # the store could not be told: the lock frees itself with its lease
    run_id = _next_run_publishes(env, models, data, out, tmp_path)
    assert published(env, "stop") == ({run_id}, run_id)


def test_a_stop_signal_while_dask_workers_write_to_the_store_ends_the_run_within_10_s(
    store, models, tmp_path
):
    """The scorer waits on its Dask workers (writing parts into the bucket): SIGTERM ends the
    run within 10 s, exit 130; the store answers, so the lock is removed at once."""
    pytest.importorskip("distributed")
    _, env = store
    data = big_csv(tmp_path, rows=1_500_000)
    out = f"s3://{BUCKET}/dask"
    args = [*_args(models, data, out, tmp_path / "m"), "--engine", "dask", "--dask-workers", 1]
    scorer = Scorer(tmp_path, "dask", env, *args)
    s3 = client(env)
    deadline = time.monotonic() + 120
    while not (  # the worker has begun writing its part into the bucket
        s3.list_multipart_uploads(Bucket=BUCKET, Prefix="dask/.staging/").get("Uploads")
        or keys(env, BUCKET, "dask/.staging/")
    ):
        assert scorer.proc.poll() is None, scorer.err.read_text()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    began = time.monotonic()
    scorer.proc.send_signal(signal.SIGTERM)
    res = scorer.wait(timeout=60)
    took = time.monotonic() - began
    assert res.code == 130, (res.code, res.stderr[-3000:])
    assert took < 10, took
    assert "Traceback" not in res.stderr
    assert published(env, "dask") == (set(), None)
    assert not keys(env, BUCKET, "dask/.lock")  # released, not left to expire
    metrics_show_no_success(tmp_path / "m", 130)
