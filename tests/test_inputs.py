"""Every input variant people send: CSV dialects, headerless Boston, Parquet, folders, globs."""

from __future__ import annotations

import decimal
import gzip

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import BOSTON_CSV, one_error_sentence
from tests.scoring_helpers import predictions, rejects, run_dir, score


def expected_price(models, rooms):
    from batch.model.registry import Registry

    meta = Registry(models).metadata("production")
    return np.float32(rooms) * np.float32(meta.weight) + np.float32(meta.bias)


@pytest.mark.parametrize(
    "name, text, encoding, newline",
    [
        ("upper.csv", "id,RM\na,6.5\nb,7\n", "utf-8", "\n"),
        ("spaces.csv", "id, Rm \na,6.5\nb,7\n", "utf-8", "\n"),
        ("bom_crlf.csv", "\ufeffid,rm\na,6.5\nb,7\n", "utf-8", "\r\n"),
        ("quoted.csv", '"id","rm"\n"a","6.5"\n"b","7"\n', "utf-8", "\n"),
        ("semicolon.csv", "id;rm\na;6.5\nb;7\n", "utf-8", "\n"),
        ("decimal_comma.csv", "id;rm\na;6,5\nb;7\n", "utf-8", "\r\n"),
        ("rooms.csv", "id,Rooms\na,6.5\nb,7\n", "utf-8", "\n"),
        ("avg.csv", "id,AVG_ROOMS\na,6.5\nb,7\n", "utf-8", "\n"),
    ],
)
def test_csv_dialects(models, tmp_path, write_csv, name, text, encoding, newline):
    path = write_csv(name, text, encoding, newline)
    folder = run_dir(score(models, tmp_path / "out", path))
    got = predictions(folder)
    assert got["id"].tolist() == ["a", "b"]
    assert got["source_row"].tolist() == [1, 2]
    np.testing.assert_allclose(
        got["predicted_median_price_k"], expected_price(models, np.array([6.5, 7.0])), rtol=1e-6
    )
    assert len(rejects(folder)) == 0


def test_gzipped_csv(models, tmp_path):
    path = tmp_path / "in.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("rm,name\n6.5,x\n")
    assert predictions(run_dir(score(models, tmp_path / "out", path)))["name"].tolist() == ["x"]


@pytest.mark.parametrize("with_medv", [False, True])
def test_headerless_boston_layout(models, tmp_path, with_medv):
    frame = pd.read_csv(BOSTON_CSV).head(20)
    if not with_medv:
        frame = frame.drop(columns="medv")
    path = tmp_path / "raw.csv"
    frame.to_csv(path, index=False, header=False)
    res = score(models, tmp_path / "out", path)
    folder = run_dir(res)
    got = predictions(folder)
    np.testing.assert_allclose(got["rm"], frame["rm"])  # rooms is column 6 (index 5)
    np.testing.assert_allclose(
        got["predicted_median_price_k"], expected_price(models, frame["rm"].to_numpy()), rtol=1e-6
    )
    import json

    report = json.loads((folder / "report.json").read_text())
    assert (report["metrics"] is not None) == with_medv
    assert "no header row" in report["inputs"][0]["notes"][0]


def test_headerless_with_other_column_count_is_an_input_error(models, tmp_path, write_csv):
    path = write_csv("odd.csv", "1,2,3\n4,5,6\n")
    res = score(models, tmp_path / "out", path)
    assert res.code == 3
    assert "no header row and 3 columns" in one_error_sentence(res.stderr)


@pytest.mark.parametrize(
    "array",
    [
        pa.array([6.5, 7.0], pa.float64()),
        pa.array([6.5, 7.0], pa.float32()),
        pa.array([6, 7], pa.int64()),
        pa.array([decimal.Decimal("6.500"), decimal.Decimal("7.000")], pa.decimal128(5, 3)),
        pa.array(["6.5", "7"], pa.string()),
        pa.array([6.5, 7.0]).dictionary_encode(),
    ],
)
def test_parquet_rooms_types(models, tmp_path, array):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"RM": array, "name": ["a", "b"]}), path)
    got = predictions(run_dir(score(models, tmp_path / "out", path)))
    rooms = np.array([float(v) for v in array.to_pylist()])
    np.testing.assert_allclose(
        got["predicted_median_price_k"], expected_price(models, rooms), rtol=1e-6
    )


def test_directory_takes_supported_files_sorted_and_ignores_others(models, tmp_path, write_csv):
    write_csv("b.csv", "rm\n6\n")
    write_csv("a.csv", "rm\n5\n")
    write_csv("notes.txt", "not data\n")
    pq.write_table(pa.table({"rm": [7.0]}), tmp_path / "in" / "c.pq")
    res = score(models, tmp_path / "out", tmp_path / "in")
    got = predictions(run_dir(res))
    assert [p.rsplit("/", 1)[-1] for p in got["source_file"]] == ["a.csv", "b.csv", "c.pq"]
    assert "ignoring" in res.stderr and "notes.txt" in res.stderr


def test_glob_and_repeated_inputs(models, tmp_path, write_csv):
    write_csv("x1.csv", "rm\n5\n")
    write_csv("x2.csv", "rm\n6\n")
    write_csv("y.csv", "rm\n7\n")
    res = score(
        models,
        tmp_path / "out",
        tmp_path / "in" / "x*.csv",
        tmp_path / "in" / "y.csv",
        tmp_path / "in" / "x1.csv",
    )  # named twice: scored once
    got = predictions(run_dir(res))
    assert [p.rsplit("/", 1)[-1] for p in got["source_file"]] == ["x1.csv", "x2.csv", "y.csv"]


def test_feature_column_setting(models, tmp_path, write_csv):
    path = write_csv("c.csv", "size,rm\n6.5,99\n")
    got = predictions(
        run_dir(score(models, tmp_path / "out", path, extra=["--feature-column", "SIZE"]))
    )
    np.testing.assert_allclose(
        got["predicted_median_price_k"], expected_price(models, [6.5]), rtol=1e-6
    )


def test_missing_rooms_column_exit_3_names_file_and_columns(models, tmp_path, write_csv):
    good = write_csv("a_good.csv", "rm\n6\n")
    bad = write_csv("b_bad.csv", "suburb,size\nx,6\n")
    res = score(models, tmp_path / "out", good, bad)
    assert res.code == 3
    line = one_error_sentence(res.stderr)
    assert "b_bad.csv" in line and "'suburb', 'size'" in line and "--feature-column" in line
    assert not (tmp_path / "out" / "runs").exists()
    # Nothing of a run; only what operators see after every run (its outcome, metrics, page).
    left = sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith("."))
    assert left == ["index.html", "metrics", "runs.jsonl"]


@pytest.mark.parametrize("content", [b"PAR1 this is not parquet", b""])
def test_corrupt_parquet_exit_3(models, tmp_path, content):
    path = tmp_path / "broken.parquet"
    path.write_bytes(content)
    res = score(models, tmp_path / "out", path)
    assert res.code == 3
    assert "broken.parquet" in one_error_sentence(res.stderr)


def test_corrupt_csv_row_exit_3_without_partial_run(models, tmp_path, write_csv):
    rows = "".join(f"{i},6.{i % 10}\n" for i in range(3000))
    path = write_csv("ragged.csv", "id,rm\n" + rows + "1,2,3,4\n")
    res = score(models, tmp_path / "out", path, extra=["--chunk-rows", 100])
    assert res.code == 3
    assert "ragged.csv" in one_error_sentence(res.stderr)
    assert not (tmp_path / "out" / "runs").exists()
    assert not list((tmp_path / "out").glob(".staging/*"))


def test_not_utf8_exit_3(models, tmp_path, write_csv):
    path = write_csv("latin.csv", "name,rm\nS\u00e3o Paulo,6\n" * 3, encoding="latin-1")
    res = score(models, tmp_path / "out", path)
    assert res.code == 3 and "UTF-8" in one_error_sentence(res.stderr)


def test_empty_and_header_only_files_score_zero_rows(models, tmp_path, write_csv):
    empty = write_csv("empty.csv", "")
    header = write_csv("header.csv", "id,rm\n")
    pq.write_table(pa.table({"rm": pa.array([], pa.float64())}), tmp_path / "in" / "none.parquet")
    res = score(models, tmp_path / "out", empty, header, tmp_path / "in" / "none.parquet")
    folder = run_dir(res)
    assert res.json["rows_scored"] == 0 and res.json["rows_rejected"] == 0
    assert len(predictions(folder)) == 0 and len(rejects(folder)) == 0
    assert (folder / "_SUCCESS").exists()


def test_no_input_files_exit_3(models, tmp_path):
    (tmp_path / "emptydir").mkdir()
    res = score(models, tmp_path / "out", tmp_path / "emptydir")
    assert res.code == 3 and "no input files" in one_error_sentence(res.stderr)
    res = score(models, tmp_path / "out", tmp_path / "does-not-exist.csv")
    assert res.code == 3 and "does not exist" in one_error_sentence(res.stderr)


def test_columns_differing_across_files_are_unified(models, tmp_path, write_csv):
    write_csv("a.csv", "rm,zip,note\n6,02134,x\n")
    pq.write_table(pa.table({"rm": [7.0], "extra": [1]}), tmp_path / "in" / "b.parquet")
    got = predictions(run_dir(score(models, tmp_path / "out", tmp_path / "in")))
    assert got["zip"].tolist()[0] == "02134"  # a code with a leading zero stays text
    assert got["rm"].tolist() == [6.0, 7.0]  # numbers from CSV and Parquet: float64
    assert got["note"].tolist()[0] == "x" and got["note"].isna().tolist()[1]
    assert got["extra"].isna().tolist()[0] and got["extra"].tolist()[1] == 1


def test_parquet_text_keeps_its_type_and_long_digit_codes_stay_text(models, tmp_path, write_csv):
    pq.write_table(pa.table({"rm": [6.0, 7.0], "code": ["12", "34"]}), tmp_path / "p.parquet")
    got = predictions(run_dir(score(models, tmp_path / "a", tmp_path / "p.parquet")))
    assert got["code"].tolist() == ["12", "34"]  # Parquet text stays text
    path = write_csv(
        "ids.csv", "rm,parcel,wide,small\n6,12345678901234567890,1234567890123456789,1\n7,2,2,2\n"
    )
    got = predictions(run_dir(score(models, tmp_path / "b", path)))
    assert got["parcel"].tolist() == ["12345678901234567890", "2"]  # beyond an int64: text
    assert got["wide"].tolist() == [1234567890123456789, 2]  # an int64, exactly
    assert got["small"].tolist() == [1, 2] and str(got["small"].dtype) == "int64"


def test_headerless_first_row_with_an_empty_cell(models, tmp_path):
    frame = pd.read_csv(BOSTON_CSV).head(5).drop(columns="medv").astype(object)
    frame.iloc[0, 0] = ""  # crim missing on the very first row
    path = tmp_path / "raw.csv"
    frame.to_csv(path, index=False, header=False)
    got = predictions(run_dir(score(models, tmp_path / "out", path)))
    np.testing.assert_allclose(got["rm"], frame["rm"].astype(float))


def test_csv_header_names_are_defused_too(models, tmp_path, write_csv):
    path = write_csv("h.csv", 'rm,"=HYPERLINK(""x"")"\n6,a\n')
    folder = run_dir(score(models, tmp_path / "out", path))
    import csv

    with open(folder / "predictions.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header[:2] == ["rm", '\'=HYPERLINK("x")']
    assert predictions(folder).columns[1] == '=HYPERLINK("x")'  # Parquet keeps the raw name


def test_an_input_that_changes_while_scored_is_refused(tmp_path):
    from batch.core.errors import InputError
    from batch.io import inputs

    path = tmp_path / "growing.csv"
    path.write_text("rm\n6\n")
    src = inputs.inspect(path)
    inputs.check_unchanged(src)  # untouched: fine
    with open(path, "a") as fh:
        fh.write("7\n")
    with pytest.raises(InputError, match="changed while it was being scored"):
        inputs.check_unchanged(src)


# -- parts: the same reader for the whole file and for its pieces (pure, no model) ---------------


@pytest.mark.parametrize("part_bytes", [50, 333, 4096, 1 << 20])
def test_csv_byte_ranges_read_exactly_the_rows_of_the_whole_file(tmp_path, part_bytes):
    from batch.io import inputs

    path = tmp_path / "a.csv"
    rows = [f"s{i},{4 + i % 50 / 10},q {i}" for i in range(2000)]
    rows.insert(700, "")  # a blank line inside: not a row, in either reading
    path.write_text("suburb,rm,note\n" + "\n".join(rows) + "\n")
    src = inputs.inspect(path)
    whole = pa.Table.from_batches(list(inputs.iter_batches(inputs.whole(src, 0), 10_000)))
    parts = inputs.split(src, 0, part_bytes)
    assert len(parts) >= (2 if part_bytes < 4096 else 1)
    counts = [inputs.count_rows(p) for p in parts]
    parts = inputs.numbered(parts, counts)
    assert sum(counts) == whole.num_rows == 2000
    assert parts[0].first_row == 1 and all(p.first_row is not None for p in parts)
    pieces = [b for p in parts for b in inputs.iter_batches(p, 10_000)]
    assert pa.Table.from_batches(pieces, schema=whole.schema).equals(whole)


def test_a_csv_with_quoted_fields_is_never_cut(tmp_path):
    from batch.io import inputs

    path = tmp_path / "a.csv"
    path.write_text("suburb,rm\n" + "".join(f'"line\nbreak {i}",6\n' for i in range(500)))
    src = inputs.inspect(path)
    assert src.quoted
    parts = inputs.split(src, 0, 64)
    assert len(parts) == 1 and inputs.count_rows(parts[0]) == 500


def test_parquet_parts_are_row_groups_numbered_from_metadata(tmp_path):
    import pyarrow.parquet as pq

    from batch.io import inputs

    pq.write_table(
        pa.table({"rm": [float(i) for i in range(1000)]}),
        tmp_path / "a.parquet",
        row_group_size=300,
    )
    parts = inputs.split(inputs.inspect(tmp_path / "a.parquet"), 2, 1)
    assert [(p.file_index, p.row_groups, p.first_row) for p in parts] == [
        (2, (0,), 1),
        (2, (1,), 301),
        (2, (2,), 601),
        (2, (3,), 901),
    ]
    assert [inputs.count_rows(p) for p in parts] == [300, 300, 300, 100]


def test_part_files_dictionary_encode_only_their_repetitive_columns(tmp_path):
    """Codes, flags and repeated text are dictionary encoded, IDs and measurements are not (a
    hash table per column for nothing); nested columns keep Parquet's default; every value reads
    back the same."""
    from batch.io.parquet_parts import ParquetParts, dictionary_columns

    n = 5000
    table = pa.table(
        {
            "id": pa.array([f"S{i:08d}" for i in range(n)]),
            "price": pa.array(np.linspace(1.0, 50.0, n)),
            "chas": pa.array([i % 2 for i in range(n)], pa.int64()),
            "source_file": pa.array(["in.csv"] * n),
            "empty": pa.nulls(n, pa.string()),
        }
    )
    assert dictionary_columns(table) == ["chas", "source_file", "empty"]
    nested = table.append_column("tags", pa.array([[i] for i in range(n)]))
    assert dictionary_columns(nested) is True
    for name, t in (("flat", table), ("nested", nested)):
        parts = ParquetParts(lambda i, name=name: tmp_path / f"{name}-{i}.parquet", t.schema)
        for batch in t.to_batches():
            parts.write(batch)
        parts.close()
        stored = pq.ParquetFile(tmp_path / f"{name}-0.parquet")
        assert stored.read().equals(t)
        group = stored.metadata.row_group(0)
        dictionary = {
            group.column(i).path_in_schema
            for i in range(group.num_columns)
            if "RLE_DICTIONARY" in group.column(i).encodings
        }
        if name == "flat":
            assert dictionary == {"chas", "source_file", "empty"}
        else:
            assert {"id", "price", "tags.list.element"} <= dictionary
