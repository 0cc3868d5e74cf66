"""Valid inputs read right, and files that are not what their names say (issues 20 and 21).

Long headers, gzip told by its content, a Parquet footer that lies about its rows, a file whose
content and name disagree, files wider than --max-columns, inputs reached through a link out of
their folder, and both engines numbering source_row the same way: all through the real CLI.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import assert_failed
from tests.scoring_helpers import engine_run, predictions, run_dir, score


def cli(models, out, *inputs, extra=()):
    return score(models, out, *inputs, extra=extra, subprocess=True)


def rows_csv(n: int = 30) -> str:
    return "".join(f"s{i},{4 + i % 40 / 10}\n" for i in range(n))


def test_a_header_longer_than_64_kb_is_read(models, tmp_path):
    names = [f"a_rather_long_column_name_{i:05d}" for i in range(3_000)]
    path = tmp_path / "in" / "long_header.csv"
    path.parent.mkdir()
    header = ",".join([*names, "rm"])
    assert len(header) > 65_536
    path.write_text(header + "\n" + ",".join(["x"] * 3_000 + ["6.5"]) + "\n")
    got = predictions(run_dir(cli(models, tmp_path / "out", path)))
    assert got["source_row"].tolist() == [1] and names[-1] in got.columns


def test_gzip_is_told_by_its_content_not_its_name(models, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("DATA.CSV.GZ", "plain_name.csv"):
        with gzip.open(folder / name, "wt") as fh:
            fh.write("suburb,rm\n" + rows_csv())
    got = predictions(run_dir(cli(models, tmp_path / "out", folder)))
    for name in ("DATA.CSV.GZ", "plain_name.csv"):
        rows = got[got["source_file"].str.endswith(name)]
        assert rows["source_row"].tolist() == list(range(1, 31)), name
        assert rows["suburb"].tolist()[:2] == ["s0", "s1"]


def test_parquet_named_csv_and_csv_named_parquet_exit_3_naming_the_real_format(models, tmp_path):
    disguised = tmp_path / "a" / "x.csv"
    disguised.parent.mkdir()
    pq.write_table(pa.table({"rm": [6.0]}), disguised)
    assert_failed(cli(models, tmp_path / "o1", disguised), 3, "x.csv", "Parquet data", ".parquet")
    text = tmp_path / "b" / "y.parquet"
    text.parent.mkdir()
    text.write_text("suburb,rm\n" + rows_csv())
    assert_failed(cli(models, tmp_path / "o2", text), 3, "y.parquet", "text (CSV?)", ".csv")


def lying_footer(path: Path) -> None:
    """1,000 rows in two row groups of 500, with a footer that says 1,500 rows."""
    pq.write_table(
        pa.table({"rm": [6.0 + i / 1000 for i in range(1000)]}), path, row_group_size=500
    )
    data = bytearray(path.read_bytes())
    size = struct.unpack("<I", data[-8:-4])[0]
    start = len(data) - 8 - size
    # FileMetaData field 3 (num_rows, i64) in Thrift's compact protocol: header 0x16, then the
    # zigzag varint of 1,000 (2,000 = d0 0f); 1,500 is 3,000 = b8 17, the same length.
    at = bytes(data[start:-8]).find(b"\x16\xd0\x0f")
    assert at >= 0
    data[start + at : start + at + 3] = b"\x16\xb8\x17"
    path.write_bytes(bytes(data))
    assert pq.ParquetFile(path).metadata.num_rows == 1500


def test_a_parquet_footer_that_lies_about_its_rows_exits_3(models, tmp_path):
    path = tmp_path / "in" / "lies.parquet"
    path.parent.mkdir()
    lying_footer(path)
    assert_failed(cli(models, tmp_path / "out", path), 3, "lies.parquet", "1,500", "1,000")
    assert not (tmp_path / "out" / "LATEST").exists()


def test_files_wider_than_max_columns_exit_3(models, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "w.csv").write_text(
        ",".join(f"c{i}" for i in range(300)) + ",rm\n" + "1," * 300 + "6\n"
    )
    assert_failed(
        cli(models, tmp_path / "o1", folder, extra=("--max-columns", 200)),
        3,
        "w.csv",
        "301 columns",
        "--max-columns",
    )
    wide = tmp_path / "p" / "w.parquet"
    wide.parent.mkdir()
    pq.write_table(pa.table({f"c{i}": [1.0] for i in range(10_001)}), wide)
    assert_failed(cli(models, tmp_path / "o2", wide), 3, "10,001 columns", "10,000 allowed")


def test_an_input_linked_from_outside_is_logged_with_its_real_path(models, tmp_path):
    secret = tmp_path / "elsewhere" / "passwd"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:\x1b[2Jroot:/root:/bin/bash" + "z" * 200 + "\ndaemon:x:1:1\n")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "x.csv").symlink_to(secret)
    res = cli(models, tmp_path / "out", folder)
    sentence = assert_failed(res, 3, "no column for rooms")
    assert f"is a link to {secret}" in res.stderr
    assert "\x1b" not in res.stderr and "\\x1b" in sentence
    assert "z" * 100 not in res.stderr  # only a short excerpt of the line is quoted


def parity_inputs(folder: Path) -> None:
    folder.mkdir()
    lines = ["suburb,rm\n"]
    for i in range(3_000):
        lines.append(f"s{i},{4 + i % 40 / 10}\n")
        if i % 250 == 0:
            lines.append("\n")  # blank lines do not count as rows
    (folder / "a_blank_lines.csv").write_text("".join(lines))
    (folder / "b_quoted.csv").write_text(
        'suburb,rm\n"two\nlines",6.1\n' + "".join(f'"q{i}",{5 + i % 9 / 10}\n' for i in range(500))
    )
    with gzip.open(folder / "C_UPPER.CSV.GZ", "wt") as fh:
        fh.write("suburb,rm\n\n" + rows_csv(700))
    with gzip.open(folder / "d_gzip_named.csv", "wt") as fh:
        fh.write("suburb,rm\n" + rows_csv(400))
    note = pa.DictionaryArray.from_arrays(
        pa.array([i % 2 for i in range(2_000)], pa.int32()), pa.array(["n" * 3_000, "m"])
    )
    pq.write_table(
        pa.table({"rm": [4 + i % 40 / 10 for i in range(2_000)], "note": note}),
        folder / "e_groups.parquet",
        row_group_size=300,
    )


def test_both_engines_number_source_row_the_same_way(tmp_path):
    pytest.importorskip("distributed")
    from batch.engines.dask import DaskEngine

    parity_inputs(tmp_path / "in")
    key = ["source_file", "source_row", "rm"]
    _, local = engine_run([str(tmp_path / "in")], tmp_path / "local", 97)
    with DaskEngine(None, 2, 60.0, part_bytes=8_192) as engine:
        _, dask = engine_run([str(tmp_path / "in")], tmp_path / "dask", 97, engine)
    a = predictions(tmp_path / "local")[key].astype(str).sort_values(key[:2]).reset_index(drop=True)
    b = predictions(tmp_path / "dask")[key].astype(str).sort_values(key[:2]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    for name, n in [
        ("a_blank_lines.csv", 3_000),
        ("C_UPPER.CSV.GZ", 700),
        ("e_groups.parquet", 2_000),
    ]:
        rows = a[a["source_file"].str.endswith(name)]["source_row"].astype(int)
        assert sorted(rows) == list(range(1, n + 1)), name
    assert local.stats.scored == dask.stats.scored


def test_both_engines_number_source_row_the_same_way_through_the_cli(models, tmp_path):
    pytest.importorskip("distributed")
    parity_inputs(tmp_path / "in")
    key = ["source_file", "source_row"]
    extra = ("--max-reject-fraction", 1, "--chunk-rows", 97)
    local = predictions(run_dir(cli(models, tmp_path / "l", tmp_path / "in", extra=extra)))
    dask = predictions(
        run_dir(
            cli(
                models,
                tmp_path / "d",
                tmp_path / "in",
                extra=(*extra, "--engine", "dask", "--dask-workers", 2),
            )
        )
    )
    a = local[[*key, "rm"]].astype(str).sort_values(key).reset_index(drop=True)
    b = dask[[*key, "rm"]].astype(str).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
