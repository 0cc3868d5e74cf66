"""Hungry files (issue 21): memory bounded by bytes under a real 1 GB address-space limit.

Each hostile file is generated here and scored by `jobs.score` in a subprocess whose address
space is limited with setrlimit(RLIMIT_AS, 1 GB) before it starts (TensorFlow is not imported
by a scoring run of a verified fold, so the interpreter with pyarrow starts at about 0.4 GB).
Every one ends in its documented exit code, never 1.
"""

from __future__ import annotations

import gzip
import json
import resource
import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tests.helpers import REPO, Result, assert_failed
from tests.scoring_helpers import rejects, run_dir

LIMIT = 1 << 30


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def score_limited(models, out, *inputs, extra=()) -> Result:
    """jobs.score in a subprocess under a 1 GB address-space limit."""
    args = ["--models-dir", models, "--output-dir", out]
    for i in inputs:
        args += ["--input", i]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.score", *[str(a) for a in [*args, *extra]]],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=_limited,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def wide_column_gz(path, rows=8_000, width=100_000):
    """~0.8 MB gzipped, 0.8 GB of text: a 100 KB cell on every row."""
    cell = b"a" * width
    with gzip.open(path, "wb") as fh:
        fh.write(b"rm,note\n")
        for _ in range(rows):
            fh.write(b"6.5," + cell + b"\n")
    return path


def huge_rooms_gz(path, cells=20, size=50 << 20):
    """Twenty 50 MB rooms cells (1 GB of text), gzipped to a few MB."""
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(b"rm,medv\n")
        for _ in range(cells):
            fh.write(b"x" * size + b",1\n6.5,20\n")
    return path


def repeated_dictionary_parquet(path, rows=3_000, size=1 << 20):
    """~850 bytes on disk: one 1 MB dictionary value on 3,000 rows (3 GB once decoded, past what
    one Arrow string array can hold)."""
    value = pa.array(["v" * size])
    note = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), value)
    table = pa.table({"rm": pa.array([6.5] * rows), "note": note})
    pq.write_table(table, path, compression="zstd")
    return path


def test_hostile_files_end_in_their_exit_codes_under_1_gb(models, tmp_path):
    wide = wide_column_gz(tmp_path / "wide.csv.gz")
    assert wide.stat().st_size < 1 << 20
    res = score_limited(models, tmp_path / "o1", wide)
    assert res.code == 0, res.stderr[-3000:]
    assert res.json["rows_scored"] == 8_000

    dictionary = repeated_dictionary_parquet(tmp_path / "dict.parquet")
    assert dictionary.stat().st_size < 2_000
    res = score_limited(models, tmp_path / "o2", dictionary)
    assert res.code == 0, res.stderr[-3000:]
    folder = run_dir(res)
    got = pq.read_table(folder / "predictions.parquet", columns=["source_row"])
    assert got.column("source_row").to_pylist() == list(range(1, 3_001))

    rooms = huge_rooms_gz(tmp_path / "rooms.csv.gz")
    res = score_limited(models, tmp_path / "o3", rooms)
    sentence = assert_failed(res, 3, "rooms.csv.gz", "8 MB", "--max-batch-bytes")
    assert len(sentence) < 600


def test_long_rejected_cells_are_kept_as_a_prefix_and_their_length(models, tmp_path):
    """A 2 MB rooms cell: rejects.csv keeps 1,000 characters and the length, report.json a short
    excerpt; the run stays inside 1 GB."""
    path = tmp_path / "in" / "long.csv"
    path.parent.mkdir()
    rows = ["rm,medv"] + ["6.5,20"] * 40
    rows[10] = "\x1b[31m" + "y" * (2 << 20) + ",20"
    path.write_text("\n".join(rows) + "\n")
    res = score_limited(models, tmp_path / "out", path)
    folder = run_dir(res)
    bad = rejects(folder)
    assert bad["source_row"].tolist() == [10]
    raw = bad["raw_value"][0]
    assert raw.startswith("\x1b[31myyy") and raw.endswith(f"... ({(2 << 20) + 5:,} characters)")
    assert len(raw) < 1_100
    report = json.loads((folder / "report.json").read_text())
    quoted = json.dumps(report["first_rejects"])
    assert len(quoted) < 1_000 and "\x1b" not in quoted
    assert report["first_rejects"][0]["raw_value"].endswith(f"({(2 << 20) + 5:,} characters)")


def test_a_batch_holds_at_most_max_batch_bytes(tmp_path):
    """The cap cuts batches (and the planning block) by bytes, long before --chunk-rows."""
    from batch.io import inputs
    from batch.io.plan import FilePlan, first_block
    from batch.io.source import Limits

    path = tmp_path / "w.csv"
    with path.open("w") as fh:
        fh.write("rm,note\n")
        for _ in range(300):
            fh.write("6.5," + "n" * 20_000 + "\n")
    src = inputs.inspect(path, Limits(batch_bytes=1 << 20))
    batches = list(inputs.iter_batches(inputs.whole(src, 0), 262_144))
    assert sum(b.num_rows for b in batches) == 300 and len(batches) >= 5
    assert max(b.nbytes for b in batches) < 3 << 20
    block = first_block(FilePlan(src, "rm", None, False), 0)
    assert block is not None and block.num_rows < 300


def test_a_repeated_dictionary_value_is_read_a_few_rows_at_a_time(tmp_path):
    """Rows per read count the longest dictionary value, which the row groups' sizes count once."""
    from batch.io import inputs
    from batch.io.source import Limits

    path = repeated_dictionary_parquet(tmp_path / "d.parquet", rows=100, size=100_000)
    src = inputs.inspect(path, Limits(batch_bytes=1 << 20))
    batches = list(inputs.iter_batches(inputs.whole(src, 0), 262_144))
    assert sum(b.num_rows for b in batches) == 100
    assert all(b.num_rows <= 11 for b in batches)
    for b in batches:
        note = b.column("note")
        decoded = note.dictionary_decode() if pa.types.is_dictionary(note.type) else note
        assert decoded.nbytes < 2 << 20


def test_max_batch_bytes_is_a_bounded_setting(models, tmp_path, write_csv):
    src = write_csv("a.csv", "rm\n6\n")
    for bad in ("1000", str(2 << 30), "nan"):
        res = score_limited(models, tmp_path / "o", src, extra=("--max-batch-bytes", bad))
        assert res.code == 2, res.stderr[-2000:]
        assert "max-batch-bytes" in res.stderr or "max_batch_bytes" in res.stderr


def test_rejects_stay_readable_by_pandas(models, tmp_path):
    """rejects.csv with a cut cell is still a CSV every reader reads as one row per reject."""
    path = tmp_path / "in" / "q.csv"
    path.parent.mkdir()
    path.write_text('rm,medv\n"' + 'a,""b' * 400 + '",1\n' + "6.5,20\n" * 30)
    folder = run_dir(score_limited(models, tmp_path / "out", path))
    got = pd.read_csv(folder / "rejects.csv", dtype=str, keep_default_na=False)
    assert len(got) == 1 and got["raw_value"][0].endswith('a,"b... (1,600 characters)')


def test_the_run_chooses_its_memory_pool_by_limit_and_by_the_users_setting():
    """No limit: jemalloc (freed pages handed back); an address-space limit: the system pool;
    ARROW_DEFAULT_MEMORY_POOL set by the user: left alone. Each in a fresh interpreter, as a run."""
    code = (
        "import pyarrow as pa\n"
        "from batch.io import memory\n"
        "memory.choose_pool()\n"
        "print(pa.default_memory_pool().backend_name)\n"
    )

    def backend(env=None, limit=False) -> str:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=_limited if limit else None,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    try:
        pa.jemalloc_memory_pool()
        unlimited = "jemalloc"
    except NotImplementedError:  # a pyarrow built without it keeps its default
        unlimited = pa.default_memory_pool().backend_name
    assert backend() == unlimited
    assert backend(limit=True) == "system"
    assert backend({"ARROW_DEFAULT_MEMORY_POOL": "system"}) == "system"
    assert backend({"ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}) == "mimalloc"


def test_matplotlib_is_imported_on_a_side_thread_while_a_run_streams():
    """plots.warm_up loads matplotlib (Agg) on its own thread; a plot drawn at once after it
    waits for the import and comes out a PNG."""
    code = (
        "import sys\n"
        "from batch.ops import plots\n"
        "thread = plots.warm_up()\n"
        "png = plots.loss_png([3.0, 2.0], None, 't')\n"
        "thread.join(60)\n"
        "import matplotlib\n"
        "print(thread.name, not thread.is_alive(), matplotlib.get_backend().lower(), png[:4] == b'\\x89PNG')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["import-matplotlib", "True", "agg", "True"]
