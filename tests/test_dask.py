"""The Dask engine on a real LocalCluster with 2 worker processes: the local engine's results."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("distributed")

from tests.helpers import one_error_sentence
from tests.scoring_helpers import rejects, run_dir, score

DASK = ["--engine", "dask", "--dask-workers", 2, "--max-reject-fraction", 1]


def multi_file_input(folder: Path) -> None:
    folder.mkdir()
    rng = np.random.default_rng(3)
    n = 3000
    rooms = rng.uniform(2.5, 9.5, n).round(3).astype(object)
    rooms[::97] = "n/a"
    rooms[5::101] = ""
    frame = pd.DataFrame(
        {"suburb": [f"s{i}" for i in range(n)], "rm": rooms, "medv": rng.uniform(5, 50, n).round(1)}
    )
    frame.to_csv(folder / "a.csv", index=False)
    # A wide CSV long enough that Dask hands its partition over in several Arrow chunks.
    wide = pd.DataFrame({f"x{j}": rng.uniform(0, 100, 120_000).round(4) for j in range(12)})
    wide["rm"] = rng.uniform(3.5, 9, 120_000).round(3)
    wide.to_csv(folder / "d_wide.csv", index=False)
    with gzip.open(folder / "b.csv.gz", "wt") as fh:
        fh.write("SUBURB;RM\n" + "".join(f"g{i};{5 + i % 30 / 10}\n" for i in range(500)))
    values = rng.uniform(3, 9, 4000)
    values[::50] = np.nan
    pq.write_table(
        pa.table({"rm": values, "code": [f"c{i}" for i in range(4000)]}),
        folder / "c.parquet",
        row_group_size=700,
    )  # several partitions
    # pandas stores a named index as a column: both engines keep it as one.
    pd.DataFrame({"suburb": ["x", "y"], "rm": [6.0, 7.0]}).set_index("suburb").to_parquet(
        folder / "e_indexed.parquet"
    )


def read_predictions(folder: Path) -> pd.DataFrame:
    frame = pd.read_parquet(folder / "predictions.parquet").drop(columns="run_id")
    return frame.sort_values(["source_file", "source_row"]).reset_index(drop=True)


def test_dask_engine_matches_the_local_engine_row_for_row(models, tmp_path):
    multi_file_input(tmp_path / "in")
    local = run_dir(
        score(
            models,
            tmp_path / "local",
            tmp_path / "in",
            extra=["--max-reject-fraction", 1, "--chunk-rows", 1000],
        )
    )
    res = score(models, tmp_path / "dask", tmp_path / "in", extra=DASK)
    distributed = run_dir(res)
    assert (distributed / "predictions.parquet").is_dir()  # a folder of part files
    pd.testing.assert_frame_equal(read_predictions(local), read_predictions(distributed))
    key = ["source_file", "source_row"]
    pd.testing.assert_frame_equal(
        rejects(local).sort_values(key).reset_index(drop=True),
        rejects(distributed).sort_values(key).reset_index(drop=True),
    )
    csv_local = pd.read_csv(local / "predictions.csv", dtype=str, keep_default_na=False)
    csv_dask = pd.read_csv(distributed / "predictions.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(csv_local.drop(columns="run_id"), csv_dask.drop(columns="run_id"))
    a = json.loads((local / "report.json").read_text())
    b = json.loads((distributed / "report.json").read_text())
    for field in ("rows_read", "rows_scored", "rows_rejected", "rejects_by_reason", "out_of_range"):
        assert a[field] == b[field], field
    assert a["metrics"] == pytest.approx(b["metrics"])
    for stat in ("count", "mean", "min", "p50", "max"):
        assert a["prediction_summary"][stat] == pytest.approx(b["prediction_summary"][stat])
    assert [
        (i["path"], i["rows_read"], i["rows_scored"], i["rows_rejected"]) for i in a["inputs"]
    ] == [(i["path"], i["rows_read"], i["rows_scored"], i["rows_rejected"]) for i in b["inputs"]]
    assert b["settings"]["engine"] == "dask"
    assert "Dask workers" in b["prediction_path"]
    assert (distributed / "_SUCCESS").exists()


def corrupt_parquet(path: Path) -> None:
    """A Parquet file whose footer is intact but whose data pages are damaged (gzip CRC fails)."""
    rng = np.random.default_rng(0)
    pq.write_table(
        pa.table({"rm": rng.uniform(4, 8, 20000)}), path, row_group_size=5000, compression="gzip"
    )
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4000] = bytes(4000)
    path.write_bytes(bytes(data))
    pq.ParquetFile(path)  # opens fine: the damage shows only when a partition is read


def ragged_csv(path: Path) -> None:
    """A CSV with a malformed row deep inside (not in the first block)."""
    rows = [f"s{i},{5 + i % 30 / 10}\n" for i in range(40000)]
    rows[35000] = "broken,6,7,8,9\n"
    path.write_text("suburb,rm\n" + "".join(rows))


def short_row_csv(path: Path) -> None:
    """A CSV with a row that has fewer fields than the header, deep inside."""
    rows = [f"s{i},{5 + i % 30 / 10},{i}\n" for i in range(40000)]
    rows[30000] = "short,6\n"
    path.write_text("suburb,rm,n\n" + "".join(rows))


@pytest.mark.parametrize(
    "make, name", [(corrupt_parquet, "b.parquet"), (ragged_csv, "b.csv"), (short_row_csv, "b.csv")]
)
def test_corrupt_data_inside_a_partition_exits_3_with_no_partial_output(
    models, tmp_path, make, name
):
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(
        pa.table({"rm": np.linspace(4, 8, 2000)}), folder / "a.parquet", row_group_size=500
    )
    make(folder / name)
    res = score(models, tmp_path / "out", folder, extra=DASK + ["--chunk-rows", 5000])
    assert res.code == 3, res.stderr[-3000:]
    assert name in one_error_sentence(res.stderr)
    out = tmp_path / "out"
    assert not (out / "runs").exists() and not list(out.glob(".staging/*"))
    assert score(models, tmp_path / "out2", folder).code == 3  # the local engine agrees


def test_dask_engine_without_dask_installed_is_a_configuration_error(models, tmp_path, write_csv):
    import subprocess
    import sys

    from tests.helpers import REPO

    path = write_csv("a.csv", "rm\n6\n")
    code = (
        "import sys; sys.modules['dask'] = None; sys.modules['distributed'] = None\n"
        "from jobs.score import main\n"
        f"sys.exit(main(['--models-dir', {str(models)!r}, '--output-dir', "
        f"{str(tmp_path / 'out')!r}, '--input', {str(path)!r}, '--engine', 'dask']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "pip install -e '.[dask]'" in one_error_sentence(proc.stderr)
    assert not (tmp_path / "out" / "runs").exists()
