"""A table of odd inputs through both engines: never exit 1, never a traceback, no row lost.

Every file here is one people actually send (other encodings, line endings, structures, types,
values). Files the scorer can read go into one folder scored in one run per engine, and each
file's rows_read must be its true number of data rows, split exactly into scored + rejected.
Files it must refuse are scored one at a time and must exit 3 with one sentence.
"""

from __future__ import annotations

import decimal
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import one_error_sentence
from tests.scoring_helpers import score

BOSTON_ROW = "0.1,0,7.07,0,0.469,{rm},78.9,4.97,2,242,17.8,396.9,9.14"


def text(path: Path, content: str, encoding: str = "utf-8") -> None:
    path.write_bytes(content.encode(encoding))


def parquet(path: Path, **columns) -> None:
    pq.write_table(pa.table(columns), path)


# name -> (writer, data rows); every one of these must score (exit 0 with --max-reject-fraction 1)
def readable(folder: Path) -> dict[str, int]:
    rows: dict[str, int] = {}

    def add(name: str, n: int, write) -> None:
        write(folder / name)
        rows[name] = n

    add("bom.csv", 2, lambda p: text(p, "\ufeffrm,x\n6,a\n7,b\n"))
    add("crlf.csv", 2, lambda p: text(p, "rm,x\r\n6,a\r\n7,b\r\n"))
    add("cr_only.csv", 2, lambda p: text(p, "rm,x\r6,a\r7,b\r"))
    add(
        "semicolon_decimal_comma.csv",
        3,
        lambda p: text(p, "Suburb;RM;price\nA;6,5;20,1\nB;7;21\nC;x;1\n"),
    )
    add("tabs.tsv.csv", 2, lambda p: text(p, "suburb\trm\na\t6\nb\t7\n"))
    add("quoted_header.csv", 2, lambda p: text(p, '"suburb","rm"\n"a","6"\n"b","7"\n'))
    add("spaced_header.csv", 2, lambda p: text(p, "suburb , Rm \na,6\nb,7\n"))
    add("blank_before_header.csv", 2, lambda p: text(p, "\n\n\nrm\n6\n7\n"))
    add("blank_between_rows.csv", 3, lambda p: text(p, "rm,x\n6,a\n\n\n7,b\n   \n8,c\n\n"))
    add(
        "quoted_newlines.csv", 2, lambda p: text(p, 'note,rm\n"two\nlines",6\n"a ""quote"", b",7\n')
    )
    add("header_only.csv", 0, lambda p: text(p, "suburb,rm\n"))
    add("empty.csv", 0, lambda p: text(p, ""))
    add("only_blank_lines.csv", 0, lambda p: text(p, "\n\n\n"))
    add(
        "headerless_13.csv",
        2,
        lambda p: text(p, "\n".join(BOSTON_ROW.format(rm=r) for r in (6, 7)) + "\n"),
    )
    add(
        "headerless_14.csv",
        2,
        lambda p: text(p, "\n".join(BOSTON_ROW.format(rm=r) + ",24" for r in (6, 7)) + "\n"),
    )
    add("gzipped.csv.gz", 3, lambda p: p.write_bytes(gzip.compress(b"rm\n6\n7\n8\n")))
    add(
        "gzip_bom_crlf.csv.gz",
        2,
        lambda p: p.write_bytes(gzip.compress("\ufeffRM;X\r\n6,5;a\r\n7;b\r\n".encode())),
    )
    add("long_field.csv", 2, lambda p: text(p, f'note,rm\n"{"x" * (2 << 20)}",6\nshort,7\n'))
    add("unicode.csv", 3, lambda p: text(p, "suburb,rm\n🏠 Høme,6\nשלום,7\n\u202eevil,8\n"))
    add(
        "formulas.csv", 3, lambda p: text(p, "suburb,rm,=cmd\n=HYPERLINK(),6,+1\n@x,7,-2\n-y,8,x\n")
    )
    add("number_spellings.csv", 8, lambda p: text(p, "rm\n 6.5 \n+6\n.5\n6.\n1e1\n6E0\n-0\n0x10\n"))
    add("special_values.csv", 5, lambda p: text(p, "rm\nnan\ninf\n-inf\nNaN\nInfinity\n"))
    add("huge_values.csv", 4, lambda p: text(p, "rm\n1e400\n-1e400\n1e-400\n" + "9" * 400 + "\n"))
    add("negative_zero.csv", 3, lambda p: text(p, "rm\n-5\n0\n0.0\n"))
    add("nul_bytes.csv", 2, lambda p: p.write_bytes(b"rm,x\n6,a\x00b\n7,c\n"))
    add("float32_rooms.parquet", 3, lambda p: parquet(p, rm=pa.array([6, 7, np.nan], pa.float32())))
    add(
        "float16_rooms.parquet", 2, lambda p: parquet(p, rm=pa.array([6.5, 7.0]).cast(pa.float16()))
    )
    add("int8_rooms.parquet", 3, lambda p: parquet(p, rm=pa.array([6, 7, -1], pa.int8())))
    add("uint64_rooms.parquet", 2, lambda p: parquet(p, rm=pa.array([6, 2**64 - 1], pa.uint64())))
    add(
        "decimal_rooms.parquet",
        2,
        lambda p: parquet(p, rm=pa.array([decimal.Decimal("6.25"), None], pa.decimal128(5, 2))),
    )
    add(
        "decimal256_rooms.parquet",
        1,
        lambda p: parquet(p, rm=pa.array([decimal.Decimal("6.25")], pa.decimal256(40, 2))),
    )
    add(
        "dictionary_rooms.parquet",
        3,
        lambda p: parquet(p, rm=pa.array(["6", "7", "6"]).dictionary_encode()),
    )
    add(
        "large_string_rooms.parquet",
        2,
        lambda p: parquet(p, rm=pa.array(["6", "x"], pa.large_string())),
    )
    add(
        "binary_rooms.parquet",
        3,
        lambda p: parquet(p, rm=pa.array([b"6.5", b"\xff\xfe", None], pa.binary())),
    )
    add("null_rooms.parquet", 2, lambda p: parquet(p, rm=pa.nulls(2)))
    add(
        "nested_columns.parquet",
        2,
        lambda p: parquet(
            p,
            rm=pa.array([6.0, 7.0]),
            tags=pa.array([[1], []], pa.list_(pa.int8())),
            info=pa.array([{"a": 1}, None]),
            wait=pa.array([1, None], pa.duration("ms")),
            when=pa.array([pd.Timestamp("2026-01-01", tz="Europe/Berlin")] * 2),
        ),
    )
    add("zero_rows.parquet", 0, lambda p: parquet(p, rm=pa.array([], pa.float64())))
    add(
        "many_row_groups.parquet",
        1000,
        lambda p: pq.write_table(pa.table({"rm": np.linspace(4, 8, 1000)}), p, row_group_size=7),
    )
    add(
        "pandas_index.parquet",
        2,
        lambda p: (
            pd.DataFrame({"suburb": ["a", "b"], "rm": [6.0, 7.0]}).set_index("suburb").to_parquet(p)
        ),
    )
    add("mixed_types_a.parquet", 1, lambda p: parquet(p, rm=[6.0], v=pa.array([2**60], pa.int64())))
    add("mixed_types_b.parquet", 1, lambda p: parquet(p, rm=[7.0], v=["text"]))
    return rows


# name -> writer; every one of these must be refused with exit 3
def refused(folder: Path) -> dict[str, object]:
    cases = {
        "list_rooms.parquet": lambda p: parquet(p, rm=pa.array([[6.0]], pa.list_(pa.float64()))),
        "bool_rooms.parquet": lambda p: parquet(p, rm=pa.array([True])),
        "duplicate_columns.parquet": lambda p: pq.write_table(
            pa.Table.from_arrays(
                [pa.array([6.0]), pa.array([1]), pa.array([2])], names=["rm", "a", "a"]
            ),
            p,
        ),
        "ambiguous_rooms.csv": lambda p: text(p, "RM,rm\n6,7\n"),
        "no_rooms.csv": lambda p: text(p, "size,price\n1,2\n"),
        "ragged_row.csv": lambda p: text(p, "rm,x\n6,a\n7,b,extra\n"),
        "latin1.csv": lambda p: text(p, "suburb,rm\nMünchen,6\n", encoding="latin-1"),
        "parquet_named_csv.csv": lambda p: pq.write_table(pa.table({"rm": [6.0]}), p),
        "truncated.parquet": lambda p: p.write_bytes(_parquet_bytes()[:-30]),
        "csv_named_parquet.parquet": lambda p: text(p, "rm\n6\n"),
        "added_column_clash.csv": lambda p: text(p, "rm,run_id\n6,x\n"),
        "corrupt_gzip.csv.gz": lambda p: p.write_bytes(gzip.compress(b"rm\n6\n7\n")[:-8]),
        "duplicate_csv_header.csv": lambda p: text(p, "rm,a,a\n6,1,2\n"),
    }
    for name, write in cases.items():
        write(folder / name)
    return cases


def _parquet_bytes() -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"rm": np.linspace(4, 8, 500)}), sink)
    return sink.getvalue().to_pybytes()


@pytest.fixture(scope="module")
def dask_address():
    """One real 2-process Dask cluster for the whole table (cheaper than one per run)."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    yield cluster.scheduler_address
    cluster.close()


def engine_flags(engine: str, address: str) -> list:
    return ["--engine", "dask", "--dask-address", address] if engine == "dask" else []


def no_traceback(res) -> None:
    assert res.code != 1, res.stderr[-3000:]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_readable_odd_inputs_lose_no_row(models, tmp_path, engine, dask_address):
    folder = tmp_path / "in"
    folder.mkdir()
    expected = readable(folder)
    assert len(expected) >= 40
    res = score(
        models,
        tmp_path / "out",
        folder,
        extra=engine_flags(engine, dask_address) + ["--max-reject-fraction", 1],
    )
    no_traceback(res)
    assert res.code == 0, res.stderr[-3000:]
    run = Path(res.json["run_dir"])
    report = json.loads((run / "report.json").read_text())
    by_name = {Path(i["path"]).name: i for i in report["inputs"]}
    assert set(by_name) == set(expected)
    for name, n in expected.items():
        got = by_name[name]
        assert got["rows_read"] == n, (name, got)
        assert got["rows_scored"] + got["rows_rejected"] == n, (name, got)
    preds = pd.read_parquet(run / "predictions.parquet")
    rejected = pd.read_csv(run / "rejects.csv", dtype=str, keep_default_na=False)
    for name, n in expected.items():
        scored = int((preds["source_file"].map(lambda s: Path(s).name) == name).sum())
        lost = int((rejected["source_file"].map(lambda s: Path(s).name) == name).sum())
        assert (scored, lost) == (by_name[name]["rows_scored"], by_name[name]["rows_rejected"]), (
            name
        )
        assert scored + lost == n, name


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_unreadable_odd_inputs_exit_3_in_one_sentence(models, tmp_path, engine, dask_address):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in refused(folder):
        out = tmp_path / f"out-{name}"
        res = score(models, out, folder / name, extra=engine_flags(engine, dask_address))
        no_traceback(res)
        assert res.code == 3, (name, res.code, res.stderr[-2000:])
        assert name in one_error_sentence(res.stderr), name
        assert not (out / "runs").exists() or not list((out / "runs").iterdir()), name
