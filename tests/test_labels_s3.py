"""jobs.labels on object storage: label files and the output folder in s3:// (a real moto
server, every job a real subprocess)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.helpers import run_cli
from tests.s3_helpers import client, keys, moto_server

pytestmark = pytest.mark.slow
BUCKET = "labels"


@pytest.fixture(scope="module")
def store():
    with moto_server() as env:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        from batch.storage import fs

        fs.forget_clients()
        client(env).create_bucket(Bucket=BUCKET)
        try:
            yield env
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            fs.forget_clients()


def test_labels_join_reads_and_writes_s3_and_a_rerun_adds_nothing(store, trained, tmp_path):
    from batch.model import datasets

    data = datasets.load_boston()
    s3 = client(store)
    rows = "id,rm\n" + "".join(f"{i},{np.float32(x)}\n" for i, x in enumerate(data.x_test))
    s3.put_object(Bucket=BUCKET, Key="in/test.csv", Body=rows.encode())
    labels = "id,medv\n" + "".join(f"{i},{np.float32(y)}\n" for i, y in enumerate(data.y_test))
    s3.put_object(Bucket=BUCKET, Key="sales/closed.csv", Body=labels.encode())
    out = f"s3://{BUCKET}/out"
    res = run_cli(
        "jobs.score", "--models-dir", trained["models"], "--output-dir", out,
        "--input", f"s3://{BUCKET}/in/test.csv",
    )  # fmt: skip
    assert res.code == 0, res.stderr[-3000:]
    run_id = res.json["run_id"]
    first = run_cli(
        "jobs.labels", "--output-dir", out, "--key", "id", f"s3://{BUCKET}/sales/closed.csv"
    )
    assert first.code == 0, first.stderr[-3000:]
    result = json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"out/labels/{run_id}.json")["Body"].read()
    )
    meta = json.loads((trained["models"] / "v1" / "metadata.json").read_text())
    assert result["realized"]["mae"] == pytest.approx(meta["metrics"]["test_mae"], abs=1e-4)
    assert result["label_files"][0]["path"] == f"s3://{BUCKET}/sales/closed.csv"
    before = {k: _stamp(s3, k) for k in keys(store, BUCKET, "out/")}
    again = run_cli(
        "jobs.labels", "--output-dir", out, "--key", "id", f"s3://{BUCKET}/sales/closed.csv"
    )
    assert again.code == 0 and again.json["unchanged"] == 1, again.stderr[-3000:]
    after = {k: _stamp(s3, k) for k in keys(store, BUCKET, "out/")}
    assert after == before
    history = s3.get_object(Bucket=BUCKET, Key="out/labels/history.jsonl")["Body"].read()
    assert len(history.decode().splitlines()) == 1


def _stamp(s3, key: str) -> tuple[str, object]:
    head = s3.head_object(Bucket=BUCKET, Key=key)
    return head["ETag"], head["LastModified"]
