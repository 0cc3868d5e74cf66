"""Failure paths release what they took, and a damaged gzip input is a read error, not a bug.

The output lock after a failure right after taking it, the prediction sink's open files when one
of them cannot be opened, and a gzip member damaged at the start (sniffing) or further in
(streaming), with both engines.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from batch.core.errors import EnvironmentFault
from batch.core.rules import REJECT_SCHEMA
from batch.io.sink import PredictionSink
from batch.storage import rundir
from tests.helpers import assert_failed
from tests.scoring_helpers import score

ENGINES = {"local": [], "dask": ["--engine", "dask", "--dask-workers", 1]}


# -- the output lock ------------------------------------------------------------------------------


def test_a_failure_right_after_the_lock_is_taken_releases_it(
    models, tmp_path, settings, monkeypatch
):
    """Whatever fails once the output lock is held (here: setting up lineage, which nothing real
    makes fail on demand, so the fault is injected) leaves the lock free for the next run."""
    from batch import scoring
    from batch.ops.lineage import Lineage

    def broken(*args, **kwargs):
        raise RuntimeError("lineage could not be set up")

    monkeypatch.setattr(Lineage, "from_settings", broken)
    out = tmp_path / "output"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("rm\n6\n")
    with pytest.raises(RuntimeError) as failed:
        scoring.score(settings(models_dir=models, output_dir=out, input=[str(tmp_path / "in")]))
    # The failed run's frames are still alive (failed.tb): its lock must be released, not
    # merely dropped when they are collected.
    assert failed.tb is not None
    after = rundir.OutputDir(out)
    after.lock("the-next-run")
    after.unlock()


# -- the prediction sink --------------------------------------------------------------------------

SCHEMA = pa.schema([("name", pa.string())])


def open_files_under(folder: Path) -> list[str]:
    """Files under `folder` that this process holds open (from /proc/self/fd)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder) + os.sep):
            held.append(target)
    return held


@pytest.mark.parametrize("part", [None, "part-00000"])
def test_a_sink_that_cannot_open_its_last_file_closes_the_ones_it_opened(tmp_path, part):
    folder = tmp_path / "staged"
    rejects = folder / ("rejects.csv" if part is None else f"parts/{part}.rejects.csv")
    rejects.mkdir(parents=True)  # a folder where the sink's third file goes
    with pytest.raises(EnvironmentFault) as failed:
        PredictionSink(folder, SCHEMA, REJECT_SCHEMA, part=part)
    assert "cannot be used" in str(failed.value)
    # The half-built sink is still referenced by the traceback: its files must already be shut.
    assert failed.tb is not None
    assert open_files_under(folder) == []


# -- a damaged gzip member ------------------------------------------------------------------------


def damaged_member(text: str) -> bytes:
    """`text` as one gzip member whose deflate stream is damaged just past the gzip header (so
    zlib.error, not BadGzipFile: the header and the CRC are never reached)."""
    member = bytearray(gzip.compress(text.encode()))
    for i in range(30, 70):
        member[i] ^= 0x55
    return bytes(member)


def damaged_gzip(path: Path, good_rows: int) -> Path:
    """A gzip CSV: `good_rows` rows in a sound first member, then a damaged member; with no
    good rows, the first member (header row included) is the damaged one."""
    rng = np.random.default_rng(7)
    rows = [f"{r:.6f},{i}\n" for i, r in enumerate(rng.uniform(4, 8, good_rows + 50_000))]
    head = "rm,id\n" + "".join(rows[:good_rows])
    rest = "".join(rows[good_rows:])
    data = (
        gzip.compress(head.encode()) + damaged_member(rest)
        if good_rows
        else damaged_member(head + rest)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    with pytest.raises(zlib.error):  # really damaged in a deflate stream
        gzip.decompress(data)
    return path


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("good_rows", [0, 20_000], ids=["while-sniffing", "while-streaming"])
def test_a_damaged_gzip_member_exits_3_naming_the_file(models, tmp_path, engine, good_rows):
    path = damaged_gzip(tmp_path / "in" / "prices.csv.gz", good_rows)
    res = score(models, tmp_path / "out", path, extra=ENGINES[engine])
    assert_failed(res, 3, "prices.csv.gz")
    assert not (tmp_path / "out" / "runs").exists() or not list(
        (tmp_path / "out" / "runs").iterdir()
    )
