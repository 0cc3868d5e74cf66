"""Fencing on object storage, through the real CLI against a moto S3 server: a scorer whose lease
lapsed (stopped longer than the lease while another scorer took over) or whose lock object
vanished exits 6 with "lease lost" and publishes nothing: no runs/<its id>, LATEST untouched, no
success in its metrics; the lock is free for the next run."""

from __future__ import annotations

import re
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

LEASE = 3  # --s3-lease-seconds: short, so a stop past it costs the test seconds


@pytest.fixture
def store():
    with moto_process() as (proc, env):
        client(env).create_bucket(Bucket=BUCKET)
        yield proc, env


def _args(models, data, out: str, metrics) -> list[object]:
    return [
        "--models-dir", models, "--input", data, "--output-dir", out,
        "--metrics-dir", metrics, "--s3-lease-seconds", LEASE, "--s3-timeout-s", 3,
    ]  # fmt: skip


def _assert_lease_lost(res, words: str) -> None:
    assert res.code == 6, (res.code, res.stderr[-3000:])
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    sentence = one_error_sentence(res.stderr)
    assert "lease lost" in sentence and words in sentence, sentence
    assert "published nothing" in sentence and "run it again" in sentence
    assert res.json["exit_code"] == 6


def test_a_scorer_stopped_past_its_lease_while_another_took_over_publishes_nothing(
    store, models, tmp_path
):
    _, env = store
    data = big_csv(tmp_path)
    out = f"s3://{BUCKET}/out"
    first = Scorer(tmp_path, "first", env, *_args(models, data, out, tmp_path / "m1"))
    try:
        wait_for_key(env, "out/.lock", first)
        first.proc.send_signal(signal.SIGSTOP)  # holds the lock, works on, then stops
        time.sleep(LEASE + 1.5)  # its lease runs out
        second = Scorer(tmp_path, "second", env, *_args(models, data, out, tmp_path / "m2"))
        took_over = second.wait(timeout=180)
        assert took_over.code == 0, took_over.stderr[-3000:]
        assert "took over the lock" in took_over.stderr
    finally:
        first.proc.send_signal(signal.SIGCONT)
    lapsed = first.wait(timeout=60)
    _assert_lease_lost(lapsed, "no renewal of the lock")

    # Only the second scorer's run is published, and LATEST names it.
    second_id = took_over.json["run_id"]
    assert published(env, "out") == ({second_id}, second_id)
    assert not keys(env, BUCKET, "out/.staging/")
    first_id = re.search(r"run (\S+): scoring", lapsed.stderr).group(1)
    assert first_id != second_id
    assert not [k for k in keys(env, BUCKET, "out/") if first_id in k and "runs.jsonl" not in k]
    metrics_show_no_success(tmp_path / "m1", 6)

    # The lock is free: the next run acquires it and publishes.
    assert "out/.lock" not in keys(env, BUCKET, "out/")
    after = Scorer(tmp_path, "after", env, *_args(models, data, out, tmp_path / "m3"))
    assert after.wait(timeout=180).code == 0


def test_a_lock_object_that_vanished_is_a_lost_lease(store, models, tmp_path):
    """Nobody took it over, but the lock object is gone (a 404 on renewal): never publish."""
    _, env = store
    data = big_csv(tmp_path)
    out = f"s3://{BUCKET}/gone"
    scorer = Scorer(tmp_path, "gone", env, *_args(models, data, out, tmp_path / "m"))
    try:
        wait_for_key(env, "gone/.lock", scorer)
        scorer.proc.send_signal(signal.SIGSTOP)
        client(env).delete_object(Bucket=BUCKET, Key="gone/.lock")
    finally:
        scorer.proc.send_signal(signal.SIGCONT)  # well within its lease
    res = scorer.wait(timeout=120)
    _assert_lease_lost(res, "is gone")
    assert published(env, "gone") == (set(), None)
    assert not keys(env, BUCKET, "gone/.staging/")
    assert not keys(env, BUCKET, "gone/.lock")
    metrics_show_no_success(tmp_path / "m", 6)
    again = Scorer(tmp_path, "again", env, *_args(models, data, out, tmp_path / "m2"))
    assert again.wait(timeout=180).code == 0


def test_a_lock_taken_over_within_the_lease_is_lost_too(store, models, tmp_path):
    """Another holder's lock object (a changed ETag) in place of ours: never publish."""
    _, env = store
    data = big_csv(tmp_path)
    out = f"s3://{BUCKET}/taken"
    scorer = Scorer(tmp_path, "taken", env, *_args(models, data, out, tmp_path / "m"))
    s3 = client(env)
    try:
        wait_for_key(env, "taken/.lock", scorer)
        scorer.proc.send_signal(signal.SIGSTOP)
        s3.put_object(Bucket=BUCKET, Key="taken/.lock", Body=b'{"pid": 4242, "host": "other"}')
    finally:
        scorer.proc.send_signal(signal.SIGCONT)
    res = scorer.wait(timeout=120)
    _assert_lease_lost(res, "another process took over")
    assert published(env, "taken") == (set(), None)
    # The other holder's lock object is left alone.
    assert (
        s3.get_object(Bucket=BUCKET, Key="taken/.lock")["Body"].read().startswith(b'{"pid": 4242')
    )
