"""The per-batch rules, without a model: validation, row numbers, added columns, statistics."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from batch.core.rules import (
    ADDED_COLUMNS,
    ADDED_FIELDS,
    REJECT_SCHEMA,
    BatchContext,
    sample_keys,
    score_batch,
)


def line(x):
    return np.asarray(x, "float32") * np.float32(2) + np.float32(1)


def context(schema: pa.Schema, **kw) -> BatchContext:
    base = dict(
        source_file="in/a.csv",
        sha256="ab" * 32,
        rooms_column="rm",
        target_column="medv",
        decimal_comma=False,
        domain=(0.0, 20.0),
        feature_range=(4.0, 8.0),
        model_version="v3",
        run_id="r1",
        schema=schema,
    )
    base.update(kw)
    return BatchContext(**base)


def schema_of(*fields: pa.Field) -> pa.Schema:
    return pa.schema(list(fields) + list(ADDED_FIELDS))


def test_valid_rows_are_predicted_and_numbered_from_first_row():
    batch = pa.record_batch(
        {
            "rm": pa.array(["6", "x", "", "3", "9", "25", "nan"]),
            "medv": pa.array(["13", "1", "1", "7", "", "1", "1"]),
        }
    )
    ctx = context(schema_of(pa.field("rm", pa.string()), pa.field("medv", pa.string())))
    out, rejects, stats = score_batch(batch, 101, ctx, line)

    got = out.to_pydict()
    assert got["rm"] == ["6", "3", "9"]
    assert got["source_row"] == [101, 104, 105]
    assert got["predicted_median_price_k"] == [13.0, 7.0, 19.0]
    assert got["out_of_range"] == [False, True, True]
    assert set(got["model_version"]) == {"v3"} and set(got["run_id"]) == {"r1"}
    assert out.schema.names[-len(ADDED_COLUMNS) :] == list(ADDED_COLUMNS)

    assert rejects.schema == REJECT_SCHEMA
    assert rejects.to_pydict() == {
        "source_file": ["in/a.csv"] * 4,
        "source_row": [102, 103, 106, 107],
        "raw_value": ["x", "", "25", "nan"],
        "reason": ["not_a_number", "missing", "out_of_domain", "non_finite"],
    }
    assert stats.scored == 3 and stats.rejected == 4
    assert stats.rejects == {"missing": 1, "not_a_number": 1, "non_finite": 1, "out_of_domain": 1}
    assert (stats.below_range, stats.above_range, stats.out_of_range) == (1, 1, 2)
    # medv is present for rows 101 and 104 (exact predictions) and empty for row 105
    assert stats.actual_n == 2 and stats.sq_err == 0.0
    assert stats.pred_min == 7.0 and stats.pred_max == 19.0
    assert len(stats.first_rejects) == 4


def test_columns_missing_from_a_file_are_null_and_types_follow_the_schema():
    batch = pa.record_batch({"rm": pa.array([5, 6], pa.int32())})
    ctx = context(
        schema_of(pa.field("rm", pa.float64()), pa.field("extra", pa.string())), target_column=None
    )
    out, rejects, stats = score_batch(batch, 1, ctx, line)
    assert out.schema.field("rm").type == pa.float64()
    assert out.column("extra").to_pylist() == [None, None]
    assert rejects.num_rows == 0 and stats.actual_n == 0


def test_decimal_comma_rooms_are_read_in_semicolon_files():
    batch = pa.record_batch({"rm": pa.array(["6,5", "7"])})
    out, _, _ = score_batch(
        batch,
        1,
        context(schema_of(pa.field("rm", pa.string())), decimal_comma=True, target_column=None),
        line,
    )
    assert out.column("predicted_median_price_k").to_pylist() == [14.0, 15.0]


def test_sample_keys_depend_only_on_file_and_row():
    rows = np.arange(1, 1001)
    keys = sample_keys("f" * 64, rows)
    assert ((keys >= 0) & (keys < 1)).all()
    assert np.array_equal(keys[500:], sample_keys("f" * 64, rows[500:]))  # batching changes nothing
    assert not np.array_equal(keys, sample_keys("e" * 64, rows))
    assert abs(keys.mean() - 0.5) < 0.05


@pytest.mark.parametrize("split", [1, 37, 500])
def test_statistics_of_batches_merge_to_those_of_the_whole(split):
    rng = np.random.default_rng(1)
    rm = rng.uniform(2, 10, 1000).round(2).astype(str).astype(object)
    rm[::13] = "bad"
    batch = pa.record_batch({"rm": pa.array(list(rm))})
    ctx = context(schema_of(pa.field("rm", pa.string())), target_column=None)
    _, _, whole = score_batch(batch, 1, ctx, line)
    from batch.core.stats import RunStats

    merged = RunStats()
    for start in range(0, 1000, split):
        _, _, part = score_batch(batch.slice(start, split), 1 + start, ctx, line)
        merged.merge(part)
    assert merged.scored == whole.scored and merged.rejects == whole.rejects
    assert merged.pred_sum == pytest.approx(whole.pred_sum)
    assert np.array_equal(np.sort(merged.sample.keys), np.sort(whole.sample.keys))


def test_the_band_contains_every_prediction_and_counts_coverage():
    from batch.core import intervals

    rng = np.random.default_rng(5)
    x = rng.uniform(4, 8, 400)
    y = 2 * x + 1 + rng.normal(0, 1, 400)
    params = intervals.calibrate(x, y, line(x).astype("float64"), 0.9)
    rooms = rng.uniform(4, 8, 2000).round(3)
    medv = 2 * rooms + 1 + rng.normal(0, 1, 2000)
    batch = pa.record_batch({"rm": pa.array(rooms), "medv": pa.array(medv)})
    ctx = context(
        schema_of(pa.field("rm", pa.float64()), pa.field("medv", pa.float64())), interval=params
    )
    out, _, stats = score_batch(batch, 1, ctx, line)
    low, pred, high = (
        out.column(c).to_numpy()
        for c in ("predicted_low_k", "predicted_median_price_k", "predicted_high_k")
    )
    assert out.schema.field("predicted_low_k").type == pa.float32()
    assert (low <= pred).all() and (pred <= high).all() and (low < high).all()
    assert stats.band_rows == 2000 and 0.85 < stats.band_covered / 2000 < 0.95

    old = context(ctx.schema, interval=None)  # a version trained before bands existed
    out, _, stats = score_batch(batch, 1, old, line)
    assert out.column("predicted_low_k").null_count == 2000 and stats.band_rows == 0


def test_repeated_text_columns_equal_pa_repeat():
    """The added text columns (source file, version, run id), built from buffers, are the same
    arrays pa.repeat gives: any text, any count, valid Arrow."""
    from batch.core.rules import _repeat

    for text in ["", "v1", "s3://bucket/in/é€😀.csv", "x" * 5000]:
        for n in (0, 1, 7, 65_536):
            got = _repeat(text, n)
            got.validate(full=True)
            assert got.equals(pa.repeat(pa.scalar(text, pa.string()), n)), (text, n)
