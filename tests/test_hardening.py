"""Hostile inputs and a hostile environment end in one sentence and the right exit code.

Real files, a real tmpfs (full disk, read-only mount), real capabilities (permission denied as
root), real signals; the state of runs/, failed/, LATEST and .staging/ is checked every time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import REPO, assert_failed, tmpfs
from tests.scoring_helpers import predictions, run_dir, score


def no_run_published(out: Path, latest: str | None = None) -> None:
    runs = list((out / "runs").iterdir()) if (out / "runs").is_dir() else []
    if latest is None:
        assert not runs and not (out / "LATEST").exists()
    else:
        assert [r.name for r in runs] == [latest]
        assert (out / "LATEST").read_text().strip() == latest
    staging = out / ".staging"
    assert not staging.exists() or not list(staging.iterdir()), list(staging.iterdir())


def big_input(path: Path, rows: int = 60_000) -> Path:
    rng = np.random.default_rng(1)
    pq.write_table(
        pa.table(
            {
                "rm": rng.uniform(4, 8, rows),
                "note": [f"suburb number {i} with a longish name" for i in range(rows)],
            }
        ),
        path,
    )
    return path


# -- the output location (exit 7) ------------------------------------------------------------------


def test_full_disk_exits_7_removes_staging_and_keeps_latest(models, tmp_path, write_csv):
    small = write_csv("small.csv", "rm\n6\n7\n")
    big = big_input(tmp_path / "big.parquet")
    with tmpfs(tmp_path / "disk", "600k") as out:
        first = run_dir(score(models, out, small, subprocess=True))
        res = score(models, out, big, subprocess=True)
        sentence = assert_failed(res, 7, str(out), "No space left on device")
        assert "nothing was published" in sentence
        no_run_published(out, latest=first.name)
        assert not (out / "failed").exists() or not list((out / "failed").iterdir())


def test_read_only_output_mount_exits_7(models, tmp_path, write_csv):
    path = write_csv("a.csv", "rm\n6\n")
    with tmpfs(tmp_path / "ro", "10m") as out:
        first = run_dir(score(models, out, path, subprocess=True))
        subprocess.run(["mount", "-o", "remount,ro", str(out)], check=True)
        res = score(models, out, path, subprocess=True)
        assert_failed(res, 7, str(out), "Read-only file system")
        no_run_published(out, latest=first.name)


def test_output_dir_that_is_a_file_exits_7(models, tmp_path, write_csv):
    path = write_csv("a.csv", "rm\n6\n")
    target = tmp_path / "not-a-dir"
    target.write_text("x")
    res = score(models, target, path, subprocess=True)
    assert_failed(res, 7, str(target))
    assert target.read_text() == "x"


def test_permission_denied_exits_7(models, tmp_path, write_csv):
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is needed to drop root's override of permissions")
    path = write_csv("a.csv", "rm\n6\n")
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o500)
    # As root, permissions are only enforced once the override capabilities are dropped.
    cmd = [
        "setpriv",
        "--bounding-set",
        "-dac_override,-dac_read_search",
        sys.executable,
        "-m",
        "jobs.score",
        "--models-dir",
        str(models),
        "--output-dir",
        str(out),
        "--input",
        str(path),
    ]
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO))
    )
    from tests.helpers import Result

    res = Result(proc.returncode, proc.stdout, proc.stderr)
    if os.geteuid() != 0:
        pytest.skip("runs as root only (a non-root user simply cannot write there either)")
    assert_failed(res, 7, str(out), "Permission denied")
    assert list(out.iterdir()) == []


# -- signals (exit 130) ---------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_mid_run_exits_130_and_publishes_nothing(models, tmp_path, sig):
    out = tmp_path / "out"
    path = big_input(tmp_path / "big.parquet", 400_000)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobs.score",
            "--models-dir",
            str(models),
            "--output-dir",
            str(out),
            "--input",
            str(path),
            "--chunk-rows",
            "500",
        ],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            parts = list(out.glob(".staging/*/predictions.csv"))
            if parts and parts[0].stat().st_size > 50_000:
                break
            assert proc.poll() is None, "the run finished before it could be stopped"
            time.sleep(0.05)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert json.loads(stdout.strip().splitlines()[-1]) == {
        "status": "interrupted",
        "exit_code": 130,
    }
    assert "Traceback" not in stderr
    no_run_published(out)


# -- inputs --------------------------------------------------------------------------------------

ENGINES = {"local": [], "dask": ["--engine", "dask", "--dask-workers", 1]}


def exotic_table(n: int = 6) -> pa.Table:
    return pa.table(
        {
            "rm": pa.array([5.0, 6.0, 7.0, 6.5, 5.5, 8.0][:n]),
            "tags": pa.array([[1, 2], [], None, [3], [4, 5, 6], [7]][:n], pa.list_(pa.int64())),
            "info": pa.array([{"a": "=cmd", "b": 1}] * n),
            "props": pa.array([[("k", 1)]] * n, pa.map_(pa.string(), pa.int64())),
            "blob": pa.array(
                [b"=HYPERLINK()", b"\xff\xfe", None, b"ok", b"x", b"y"][:n], pa.binary()
            ),
            "wait": pa.array([1, 2, 3, 4, 5, 6][:n], pa.duration("s")),
            "kind": pa.array(["=1+1", "b", "=1+1", "c", "d", "e"][:n]).dictionary_encode(),
            "half": pa.array([1.5] * n).cast(pa.float16()),
            "big": pa.array(["@SUM(A1)"] * n, pa.large_string()),
            "when": pa.array([pd.Timestamp("2026-01-01", tz="UTC")] * n),
        }
    )


@pytest.mark.parametrize("engine", list(ENGINES))
def test_every_arrow_type_is_carried_through_and_defused(models, tmp_path, engine):
    path = tmp_path / "in" / "exotic.parquet"
    path.parent.mkdir()
    table = exotic_table()
    pq.write_table(table, path)
    folder = run_dir(score(models, tmp_path / "out", path, extra=ENGINES[engine]))
    got = pq.read_table(folder / "predictions.parquet")
    for name in table.column_names:
        if name == "kind":  # a dictionary is stored as its values
            assert got.column(name).to_pylist() == table.column(name).to_pylist()
        elif name == "big":  # text is one type in the output: large_string is stored as string
            assert got.schema.field(name).type == pa.string()
            assert got.column(name).to_pylist() == table.column(name).to_pylist()
        else:
            assert got.schema.field(name).type == table.schema.field(name).type, name
            assert got.column(name).to_pylist() == table.column(name).to_pylist(), name
    csv = pd.read_csv(folder / "predictions.csv", dtype=str, keep_default_na=False)
    assert json.loads(csv["tags"][0]) == [1, 2] and json.loads(csv["info"][0]) == {
        "a": "=cmd",
        "b": 1,
    }
    assert csv["kind"].tolist()[0] == "'=1+1"  # dictionary text is defused too
    assert csv["blob"][0] == "'=HYPERLINK()" and csv["blob"][1].startswith("base64:")
    assert csv["big"][0] == "'@SUM(A1)"
    assert not any(str(v).startswith(("=", "+", "@")) for col in csv for v in csv[col])


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize(
    "rooms, kind",
    [
        (pa.array([[6.0]], pa.list_(pa.float64())), "list<"),
        (pa.array([{"x": 6.0}]), "struct<x: double>"),
        (pa.array([True]), "bool"),
        (pa.array([6], pa.duration("s")), "duration[s]"),
    ],
)
def test_rooms_of_a_type_that_cannot_hold_a_number_exits_3(models, tmp_path, engine, rooms, kind):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"rm": rooms}), path)
    res = score(models, tmp_path / "out", path, extra=ENGINES[engine])
    assert_failed(res, 3, "'rm'", kind)
    no_run_published(tmp_path / "out")


@pytest.mark.parametrize("engine", list(ENGINES))
def test_duplicate_and_ambiguous_columns_exit_3_naming_them(models, tmp_path, write_csv, engine):
    dup = tmp_path / "dup.parquet"
    pq.write_table(
        pa.Table.from_arrays(
            [pa.array([6.0]), pa.array([1]), pa.array([2])], names=["rm", "x", "x"]
        ),
        dup,
    )
    assert_failed(score(models, tmp_path / "o1", dup, extra=ENGINES[engine]), 3, "'x'")
    # Two columns whose names differ only in case would be one output column (names are
    # case-folded so feeds read as one table): refused naming both, whichever is the feature.
    both = write_csv("both.csv", "RM,rm\n6,7\n")
    for extra in ([], ["--feature-column", "RM"]):
        assert_failed(
            score(models, tmp_path / f"o2{len(extra)}", both, extra=ENGINES[engine] + extra),
            3,
            "'RM'",
            "'rm'",
            "differ only in case",
        )
    # One of them alone scores as the lower-case name would.
    chosen = run_dir(
        score(models, tmp_path / "o3", write_csv("upper.csv", "RM\n6\n"), extra=ENGINES[engine])
    )
    assert (
        predictions(chosen)["predicted_median_price_k"].round(3).tolist()
        == predictions(run_dir(score(models, tmp_path / "o4", write_csv("six.csv", "rm\n6\n"))))[
            "predicted_median_price_k"
        ]
        .round(3)
        .tolist()
    )


def test_csv_structure_real_files_have(models, tmp_path, write_csv):
    # blank lines before the header, between rows and at the end; whitespace-only lines
    text = "\n\n  \nsuburb,rm\n\na,6\n   \nb,7\n\n\n"
    folder = run_dir(score(models, tmp_path / "o1", write_csv("blank.csv", text)))
    got = predictions(folder)
    assert got["suburb"].tolist() == ["a", "b"] and got["source_row"].tolist() == [1, 2]
    # quoted fields with line breaks, across Arrow's 1 MB read blocks
    rows = "".join(f'"line one\nline two {i} {"x" * 300}",{4 + i % 40 / 10}\n' for i in range(6000))
    folder = run_dir(score(models, tmp_path / "o2", write_csv("quoted.csv", "note,rm\n" + rows)))
    got = predictions(folder)
    assert len(got) == 6000 and got["source_row"].tolist() == list(range(1, 6001))
    assert got["note"][5999].startswith("line one\nline two 5999")
    # a 5 MB field, past the 1 MB read block
    long = write_csv("long.csv", "note,rm\nshort,6\n" + '"' + "y" * (5 << 20) + '",7\nend,8\n')
    got = predictions(run_dir(score(models, tmp_path / "o3", long)))
    assert got["source_row"].tolist() == [1, 2, 3] and len(got["note"][1]) == 5 << 20


@pytest.mark.slow
def test_fields_up_to_the_limit_are_read_and_longer_ones_exit_3(models, tmp_path):
    from batch.io.source import BATCH_BYTES

    ok = tmp_path / "in" / "big_field.csv"
    ok.parent.mkdir()
    ok.write_bytes(b'note,rm\n"' + b"z" * (7 << 20) + b'",6\nnext,7\n')
    got = pd.read_parquet(
        run_dir(score(models, tmp_path / "o1", ok)) / "predictions.parquet", columns=["source_row"]
    )
    assert got["source_row"].tolist() == [1, 2]
    bad = tmp_path / "in2" / "too_big.csv"
    bad.parent.mkdir()
    bad.write_bytes(b'note,rm\nfirst,6\n"' + b"z" * (BATCH_BYTES // 4 + (1 << 20)) + b'",6\n')
    assert_failed(
        score(models, tmp_path / "o2", bad), 3, f"{BATCH_BYTES >> 22} MB", "--max-batch-bytes"
    )
    no_run_published(tmp_path / "o2")


def test_widening_and_retyping_never_change_a_value(models, tmp_path, write_csv):
    folder = tmp_path / "in"
    folder.mkdir()
    exact = 2**53 + 1  # a float64 cannot hold it
    pq.write_table(
        pa.table(
            {"rm": [6.0], "n": pa.array([exact], pa.int64()), "small": pa.array([7], pa.int64())}
        ),
        folder / "a.parquet",
    )
    pq.write_table(pa.table({"rm": [7.0], "n": [0.5], "small": [0.25]}), folder / "b.parquet")
    got = pq.read_table(run_dir(score(models, tmp_path / "o1", folder)) / "predictions.parquet")
    assert got.schema.field("n").type == pa.string()  # not float64: the integer stays exact
    assert got.column("n").to_pylist() == [str(exact), "0.5"]
    assert got.schema.field("small").type == pa.float64()  # exact either way: widened
    assert got.column("small").to_pylist() == [7.0, 0.25]

    frame = pd.DataFrame(
        {
            "rm": [6.1, 6.2],
            "ratio": [0.1 + 0.2, 1 / 3],  # 17 significant digits
            "huge": ["1e400", "1"],
            "id": ["12345678901234567890", "1"],  # beyond an int64
            "big": ["12345678901234567", "1"],  # beyond a float64, not an int64
            "long": ["0.12345678901234567890", "1"],
        }
    )
    path = tmp_path / "pandas.csv"
    frame.to_csv(path, index=False)
    folder = run_dir(score(models, tmp_path / "o2", path))
    got = pq.read_table(folder / "predictions.parquet")
    assert got.schema.field("ratio").type == pa.float64()
    assert got.column("ratio").to_pylist() == [0.1 + 0.2, 1 / 3]
    assert got.schema.field("big").type == pa.int64()
    assert got.column("big").to_pylist() == [12345678901234567, 1]
    for name in ("huge", "id", "long"):
        assert got.schema.field(name).type == pa.string(), name
        assert got.column(name).to_pylist() == frame[name].tolist()


def test_domain_must_be_finite_and_huge_rooms_are_out_of_domain(models, tmp_path, write_csv):
    path = write_csv("a.csv", "rm\n6\n")
    res = score(models, tmp_path / "o1", path, extra=["--domain-max", "inf"], subprocess=True)
    assert_failed(res, 2, "domain_max")
    big = tmp_path / "huge.parquet"
    pq.write_table(pa.table({"rm": [6.0, 1e300, 3.4e39, 7.0]}), big)
    res = score(
        models, tmp_path / "o2", big, extra=["--domain-max", "1e308", "--max-reject-fraction", "1"]
    )
    assert res.code == 0, res.stderr[-2000:]
    report = json.loads((Path(res.json["run_dir"]) / "report.json").read_text())
    assert report["rejects_by_reason"]["out_of_domain"] == 2 and report["rows_scored"] == 2


def test_locations_that_are_the_wrong_kind_say_so(tmp_path, write_csv):
    path = write_csv("a.csv", "rm\n6\n")
    registry = tmp_path / "models-file"
    registry.write_text("x")
    res = score(registry, tmp_path / "out", path)
    assert_failed(res, 4, "is a file, not a folder", "--models-dir")
    from jobs.train import main
    from tests.helpers import run_main

    res = run_main(main, ["--models-dir", tmp_path / "m", "--data", tmp_path])
    assert_failed(res, 3, "is a folder, not a file", "--data")
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").glob("v*"))
