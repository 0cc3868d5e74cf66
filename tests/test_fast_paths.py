"""The fast paths: pipelined streaming (same files as sequential) and scoring without TensorFlow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.core.errors import InputError
from batch.io.pipeline import PipelinedSink, ReadAhead
from batch.model import linear
from tests.helpers import REPO, one_error_sentence
from tests.scoring_helpers import engine_run, predictions, run_dir, score


def no_pipeline_threads() -> bool:
    names = {"read-ahead", "write-parquet", "write-csv"}
    return not [t for t in threading.enumerate() if t.name in names]


# -- the pipeline, without a model -----------------------------------------------------------------


def test_read_ahead_gives_every_item_in_order_and_its_errors():
    with ReadAhead(iter(range(100)), 1) as it:
        assert list(it) == list(range(100))

    def failing():
        yield 1
        raise InputError("bad row")

    with pytest.raises(InputError, match="bad row"), ReadAhead(failing(), 1) as it:
        list(it)
    assert no_pipeline_threads()


def test_read_ahead_stops_and_closes_its_source_when_the_consumer_stops():
    closed = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    with ReadAhead(endless(), 1) as it:
        assert next(it) == 0
    assert closed.is_set() and no_pipeline_threads()


def sink_batches(n: int = 5) -> tuple[pa.Schema, list[tuple[pa.RecordBatch, pa.RecordBatch]]]:
    from batch.core.rules import REJECT_SCHEMA

    schema = pa.schema([("rm", pa.float64()), ("note", pa.string())])
    out = []
    for i in range(n):
        preds = pa.record_batch(
            [
                pa.array(np.arange(i, i + 1000, dtype="float64")),
                pa.array([f"=cmd{j}" if j % 7 == 0 else f"n{j}" for j in range(1000)]),
            ],
            schema=schema,
        )
        rejects = pa.record_batch(
            [
                pa.array(["f.csv"]),
                pa.array([i], pa.int64()),
                pa.array(["@x"]),
                pa.array(["not_a_number"]),
            ],
            schema=REJECT_SCHEMA,
        )
        out.append((preds, rejects if i % 2 else rejects.slice(0, 0)))
    return schema, out


def test_pipelined_sink_writes_the_same_bytes_as_the_plain_sink(tmp_path):
    from batch.core.rules import REJECT_SCHEMA
    from batch.io.sink import PredictionSink

    schema, batches = sink_batches()
    folders = []
    for cls in (PredictionSink, PipelinedSink):
        folder = tmp_path / cls.__name__
        folder.mkdir()
        sink = cls(folder, schema, REJECT_SCHEMA)
        for preds, rejects in batches:
            sink.write(preds, rejects)
        sink.close()
        folders.append(folder)
    for name in ("predictions.parquet/part-00000.parquet", "predictions.csv", "rejects.csv"):
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes(), name
    assert no_pipeline_threads()


def test_a_writer_error_is_raised_in_the_caller_and_stops_every_thread(tmp_path):
    from batch.core.rules import REJECT_SCHEMA

    schema, batches = sink_batches(2)
    sink = PipelinedSink(tmp_path, schema, REJECT_SCHEMA)
    wrong = pa.record_batch([pa.array([1, 2])], names=["other"])  # not the file's schema
    with pytest.raises(ValueError, match="(?i)schema"):  # raised by a writer thread
        sink.write(wrong, batches[0][1])
        for preds, rejects in batches * 50:  # the error surfaces at a later write or at close
            sink.write(preds, rejects)
        sink.close()
    sink.abort()
    assert no_pipeline_threads()


def interrupted_at_random(make, rounds: int, seed: int) -> list[int]:
    """`rounds` times: `loop, stop = make()`, then `loop()` until a KeyboardInterrupt raised by
    a real SIGALRM handler somewhere in the main thread (as a stop signal's handler does), then
    `stop()`. The rounds whose stop did not end within 10 s."""
    rng = np.random.default_rng(seed)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    hung = []
    try:
        for round_ in range(rounds):
            loop, stop = make()
            try:
                signal.setitimer(signal.ITIMER_REAL, rng.uniform(0.0005, 0.005))
                loop()
            except KeyboardInterrupt:
                helper = threading.Thread(target=stop, daemon=True)  # so that a hang is seen
                helper.start()
                helper.join(10)
                if helper.is_alive():
                    hung.append(round_)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return hung


def test_a_stop_signal_anywhere_in_the_main_thread_never_hangs_the_pipeline(tmp_path):
    """A KeyboardInterrupt raised while the main thread waited on a queue between the threads
    once left a writer waiting for ever, and the run's abort with it (a stop that never ended)."""
    from batch.core.rules import REJECT_SCHEMA

    schema, batches = sink_batches(1)
    preds, rejects = batches[0][0].slice(0, 1), batches[0][1]

    def writing():
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        folder.mkdir()
        sink = PipelinedSink(folder, schema, REJECT_SCHEMA)

        def loop():
            while True:
                sink.write(preds, rejects)

        return loop, sink.abort

    def reading():
        reader = ReadAhead(iter(range(10**9)), 1)
        return (lambda: list(reader)), reader.close

    assert interrupted_at_random(writing, 150, seed=1) == []
    assert interrupted_at_random(reading, 150, seed=2) == []
    assert no_pipeline_threads()


def local_run(plan_inputs_: list[str], staged: Path, pipeline: bool, chunk_rows: int):
    """The local engine on real files, with a folded model (no Keras), into `staged`."""
    from batch.engines.local import LocalEngine

    return engine_run(plan_inputs_, staged, chunk_rows, LocalEngine(60.0, pipeline=pipeline))[1]


def test_pipelined_and_sequential_runs_write_identical_files(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "in"
    folder.mkdir()
    n = 30_000
    rooms = rng.uniform(3, 9, n).round(3).astype(object)
    rooms[::97] = "n/a"  # rejects all along the file
    pd.DataFrame({"rm": rooms, "medv": rng.uniform(5, 50, n), "note": "=x"}).to_csv(
        folder / "a.csv", index=False
    )
    pq.write_table(
        pa.table({"rm": rng.uniform(3, 9, n), "zn": rng.uniform(0, 1, n)}),
        folder / "b.parquet",
        row_group_size=7_000,
    )
    results = [local_run([str(folder)], tmp_path / f"s{int(p)}", p, 4_000) for p in (False, True)]
    assert results[0].stats.scored == results[1].stats.scored > 0
    assert results[0].stats.rejected == results[1].stats.rejected > 0
    for name in ("predictions.parquet/part-00000.parquet", "predictions.csv", "rejects.csv"):
        assert (tmp_path / "s0" / name).read_bytes() == (tmp_path / "s1" / name).read_bytes()
    assert no_pipeline_threads()


def test_a_read_error_mid_file_stops_the_pipelined_run(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    good = "\n".join(f"{5 + i % 3}" for i in range(20_000))
    (folder / "a.csv").write_text("rm\n" + good + "\n6,7,8\n" + good + "\n")  # a bad row late on
    with pytest.raises(InputError):
        local_run([str(folder)], tmp_path / "s", True, 1_000)
    assert no_pipeline_threads()


# -- the fold, read and verified without TensorFlow ------------------------------------------------


def test_the_archive_reader_gives_the_trained_weights_without_tensorflow(trained):
    model = trained["models"] / "v1" / "model.keras"
    meta = json.loads((trained["models"] / "v1" / "metadata.json").read_text())
    fold = linear.read_fold(model)
    assert (float(fold.weight), float(fold.bias)) == (meta["weight"], meta["bias"])
    record = meta["fold"]
    assert record["verified"] is True and record["model_sha256"] == meta["model_sha256"]
    assert record["probe_rows"] > 2000 and record["max_gap_float32_eps"] <= 2
    # The reader itself needs neither TensorFlow nor Keras.
    code = (
        "import sys; from batch.model.linear import read_fold; f = read_fold(sys.argv[1]); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
        "print(float(f.weight), float(f.bias), bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(model)],
        cwd=REPO,
        text=True,
        capture_output=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert out.stdout.split() == [repr(meta["weight"]), repr(meta["bias"]), "[]"], out.stderr


def test_a_model_that_is_not_one_linear_dense_is_not_folded(tmp_path, offline_keras_home):
    from batch.model.network import keras

    k = keras()
    for name, layers in {
        "relu": [k.layers.Dense(1, activation="relu")],
        "two": [k.layers.Dense(2), k.layers.Dense(1)],
    }.items():
        model = k.Sequential([k.Input(shape=(1,)), *layers])
        path = tmp_path / f"{name}.keras"
        model.save(path)
        with pytest.raises(linear.NotLinear):
            linear.read_fold(path)
        assert linear.verify(path, "x" * 64, (3.5, 8.8)) is None


# Runs the scorer, then says which of tensorflow and keras the process imported.
IMPORTS = """
import json, runpy, sys
sys.argv = ["jobs.score"] + sys.argv[1:]
try:
    runpy.run_module("jobs.score", run_name="__main__")
finally:
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras"})
    sys.stderr.write("HEAVY_MODULES " + json.dumps(heavy) + "\\n")
"""


def score_watching_imports(models: Path, out: Path, src: Path) -> tuple[int, list[str], str]:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            IMPORTS,
            "--models-dir",
            str(models),
            "--output-dir",
            str(out),
            "--input",
            str(src),
        ],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY_MODULES ")]
    return proc.returncode, json.loads(lines[-1].split(" ", 1)[1]), proc.stderr


def scored(out: Path) -> pd.DataFrame:
    run = next((out / "runs").iterdir())
    return predictions(run).drop(columns="run_id")


def report(out: Path) -> dict:
    return json.loads((next((out / "runs").iterdir()) / "report.json").read_text())


@pytest.fixture
def rooms_file(tmp_path) -> Path:
    rng = np.random.default_rng(7)
    path = tmp_path / "in.csv"
    rooms = np.concatenate([rng.uniform(3, 9, 400), [3.561, 8.78, 0.001, 19.99, 1e-30]])
    pd.DataFrame({"rm": rooms, "medv": rng.uniform(5, 50, len(rooms))}).to_csv(path, index=False)
    return path


def set_fold(models: Path, change) -> None:
    path = models / "v1" / "metadata.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def test_a_verified_dense_scores_without_tensorflow_bit_identical_to_keras(
    models, tmp_path, rooms_file
):
    code, heavy, err = score_watching_imports(models, tmp_path / "fast", rooms_file)
    assert code == 0, err[-3000:]
    assert heavy == [], heavy
    fast = report(tmp_path / "fast")
    assert "no TensorFlow" in fast["prediction_path"]
    assert "verified at publish" in fast["prediction_path"]

    # Without the publish-time record the same version is scored through Keras ...
    set_fold(models, lambda meta: meta.pop("fold"))
    code, heavy, err = score_watching_imports(models, tmp_path / "keras", rooms_file)
    assert code == 0, err[-3000:]
    assert heavy == ["keras", "tensorflow"], heavy
    assert "no TensorFlow" not in report(tmp_path / "keras")["prediction_path"]
    # ... and gives the very same float32 predictions, which are Keras's own output.
    a, b = scored(tmp_path / "fast"), scored(tmp_path / "keras")
    pd.testing.assert_frame_equal(a, b)
    from batch.model.network import keras, predict

    model = keras().saving.load_model(models / "v1" / "model.keras", compile=False)
    expected = predict(model, a["rm"].to_numpy())
    assert np.array_equal(a["predicted_median_price_k"].to_numpy(), expected)


@pytest.mark.parametrize("tamper", ["unverified", "old_format"])
def test_a_fold_record_that_does_not_hold_falls_back_to_keras(models, tmp_path, rooms_file, tamper):
    changes = {
        "unverified": lambda m: m["fold"].update(verified=False),
        "old_format": lambda m: m["fold"].update(format=0),
    }
    set_fold(models, changes[tamper])
    code, heavy, err = score_watching_imports(models, tmp_path / "out", rooms_file)
    assert code == 0, err[-3000:]
    assert heavy == ["keras", "tensorflow"], heavy
    assert "scoring through Keras" in err


def test_a_tampered_model_file_is_still_refused_on_the_fast_path(models, tmp_path, rooms_file):
    path = models / "v1" / "model.keras"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    res = score(models, tmp_path / "out", rooms_file, subprocess=True)
    assert res.code == 4, res.stderr[-2000:]
    assert "does not match the sha256" in one_error_sentence(res.stderr)
    assert not (tmp_path / "out" / "runs").exists() or not list(
        (tmp_path / "out" / "runs").iterdir()
    )


def test_the_dask_engine_scores_a_verified_fold_identically(models, tmp_path, rooms_file):
    pytest.importorskip("distributed")
    local = run_dir(score(models, tmp_path / "l", rooms_file, subprocess=True))
    dask = run_dir(
        score(
            models,
            tmp_path / "d",
            rooms_file,
            subprocess=True,
            extra=["--engine", "dask", "--dask-workers", 1],
        )
    )
    a = predictions(local).drop(columns="run_id")
    b = predictions(dask).drop(columns="run_id")
    pd.testing.assert_frame_equal(a, b)
    assert "no TensorFlow" in json.loads((dask / "report.json").read_text())["prediction_path"]
