"""Planning a run from real small files: columns, one schema, re-typing candidates, refusals."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.core.columns import unify
from batch.core.errors import InputError
from batch.core.rules import ADDED_COLUMNS
from batch.io.plan import plan_inputs
from tests.model_helpers import fake_metadata


def test_schema_unifies_columns_across_csv_and_parquet(tmp_path):
    (tmp_path / "a.csv").write_text("Suburb;RM;medv\nx;6,5;20\n")
    pq.write_table(
        pa.table({"rm": [6.0], "code": ["c1"], "n": pa.array([1], pa.int32())}),
        tmp_path / "b.parquet",
    )
    plan = plan_inputs([str(tmp_path)], None, "medv", None)
    a, b = plan.files
    assert (a.rooms_column, a.target_column, a.decimal_comma) == ("RM", "medv", True)
    assert (b.rooms_column, b.target_column, b.decimal_comma) == ("rm", None, False)
    names = plan.schema.names
    # RM and rm differ only in case: one output column, spelt as it first appears.
    assert names[:5] == ["Suburb", "RM", "medv", "code", "n"]
    assert tuple(names[5:]) == ADDED_COLUMNS
    assert plan.schema.field("n").type == pa.int64()  # integers of any width are int64
    # CSV text may become numbers; Parquet text stays text
    assert plan.retype_candidates == {"Suburb", "RM", "medv"}
    meta = fake_metadata(feature_range={"min": 3.0, "max": 9.0})
    ctx = plan.context(0, domain=(0, 20), meta=meta, version="v1", run_id="r")
    assert ctx.feature_range == (3.0, 9.0) and ctx.schema == plan.schema


def test_unify_widens_numbers_and_falls_back_to_text():
    assert unify(None, pa.int64()) == pa.int64()
    assert unify(pa.int64(), pa.float32()) == pa.float64()
    assert unify(pa.int64(), pa.string()) == pa.string()
    assert unify(pa.string(), pa.dictionary(pa.int8(), pa.string())) == pa.string()


def test_a_file_without_rooms_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "a.csv").write_text("size,price\n1,2\n")
    with pytest.raises(InputError, match=r"no column for rooms .* \(columns: 'size', 'price'\)"):
        plan_inputs([str(tmp_path / "a.csv")], None, "medv", None)


def test_a_column_the_scorer_adds_is_refused(tmp_path):
    (tmp_path / "a.csv").write_text("rm,run_id\n6,x\n")
    with pytest.raises(InputError, match="'run_id', which the scorer adds"):
        plan_inputs([str(tmp_path / "a.csv")], None, "medv", None)


def test_new_only_skips_files_by_content_and_empty_files_are_kept_unscorable(tmp_path):
    (tmp_path / "a.csv").write_text("rm\n6\n")
    (tmp_path / "b.csv").write_text("")
    first = plan_inputs([str(tmp_path)], None, "medv", None)
    assert [f.scorable for f in first.files] == [True, False]
    again = plan_inputs([str(tmp_path)], None, "medv", {first.files[0].src.sha256})
    assert [f.src.path.name for f in again.files] == ["b.csv"]
    assert again.skipped[0]["path"].endswith("a.csv")


def test_no_input_files_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no input files found"):
        plan_inputs([str(tmp_path)], None, "medv", None)


def test_parquet_integers_of_any_width_are_int64_and_a_uint64_only_when_it_fits(tmp_path):
    big = 2**63 + 5  # beyond an int64
    pq.write_table(
        pa.table(
            {
                "rm": [6.0, 7.0],
                "i8": pa.array([1, -2], pa.int8()),
                "u32": pa.array([1, 2**32 - 1], pa.uint32()),
                "u64": pa.array([1, 2**63 - 1], pa.uint64()),
                "huge": pa.array([1, big], pa.uint64()),
                "codes": pa.array([3, 4], pa.int16()).dictionary_encode(),
                "x": pa.array([1.0, 2.0]),
            }
        ),
        tmp_path / "a.parquet",
    )
    (tmp_path / "b.csv").write_text("rm,x\n6,3\n")
    plan = plan_inputs([str(tmp_path)], None, None, None)
    types = {f.name: f.type for f in plan.schema}
    assert types["i8"] == types["u32"] == types["u64"] == types["codes"] == pa.int64()
    assert types["huge"] == pa.uint64()  # an int64 would change its values
    # A float column in Parquet stays float64 beside whole numbers in a CSV.
    assert "x" in plan.numbers and "x" not in plan.integers
    assert plan.parquet_schema.field("x").type == pa.float64()


def test_whole_numbers_in_every_csv_make_an_int64_column(tmp_path):
    (tmp_path / "a.csv").write_text("rm,n,d,z\n6.5, 7,1e5,02134\n7,+3,2,1\n")
    (tmp_path / "b.csv").write_text("rm,n,d\n6,-4,7.0\n")
    plan = plan_inputs([str(tmp_path)], None, None, None)
    assert plan.numbers == {"rm", "n", "d"} and plan.integers == {"n"}
    schema = plan.parquet_schema
    assert schema.field("n").type == pa.int64() and schema.field("d").type == pa.float64()
    assert schema.field("z").type == pa.string() and plan.schema.field("n").type == pa.string()
