"""The per-batch rules every engine applies: validate rooms, predict, build output and reject rows.

Pure: a record batch and a context in; the output batch, the rejects batch and the batch's
statistics out. The columns the scorer adds to every input row are declared here, beside the
code that fills them, so an output column changes in this one file.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batch.core import features, intervals
from batch.core.columns import conform
from batch.core.documents import ModelMetadata
from batch.core.stats import FIRST_REJECTS, RunStats

PREDICTION = "predicted_median_price_k"
LOW, HIGH = "predicted_low_k", "predicted_high_k"  # the calibrated band around the prediction
ROOMS_USED, TARGET_USED = "rooms_used", "target_used"
# What the scorer appends to every input row, in this order (filled in by score_batch).
ADDED_FIELDS = pa.schema(
    [
        pa.field("source_file", pa.string()),
        pa.field("source_row", pa.int64()),
        pa.field(PREDICTION, pa.float32()),
        pa.field(LOW, pa.float32()),
        pa.field(HIGH, pa.float32()),
        pa.field("out_of_range", pa.bool_()),
        pa.field("model_version", pa.string()),
        pa.field("run_id", pa.string()),
        # The same two columns whatever the feed called them: the rooms value the prediction
        # used, and the true price the errors used (null: the row or its file had none).
        pa.field(ROOMS_USED, pa.float64()),
        pa.field(TARGET_USED, pa.float64()),
    ]
)
ADDED_COLUMNS = tuple(ADDED_FIELDS.names)
REJECT_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("source_row", pa.int64()),
        ("raw_value", pa.string()),
        ("reason", pa.string()),
    ]
)

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class BatchContext:
    """What scoring one batch of one file needs to know (picklable: it travels to Dask workers)."""

    source_file: str
    sha256: str
    rooms_column: str
    target_column: str | None
    decimal_comma: bool
    domain: tuple[float, float]
    feature_range: tuple[float, float]
    model_version: str
    run_id: str
    schema: pa.Schema  # the output schema (input columns unified across files + ADDED_FIELDS)
    retype_candidates: frozenset[str] = frozenset()  # CSV text columns that may hold numbers
    numbers: frozenset[str] = frozenset()  # of those, the ones predictions.parquet holds as numbers
    integers: frozenset[str] = frozenset()  # of those, the ones it holds as int64 (else float64)
    interval: dict[str, Any] | None = (
        None  # the model's band parameters (None: a version without them)
    )


def feature_range(meta: ModelMetadata) -> tuple[float, float]:
    """The model's training range of rooms from its metadata."""
    return meta.feature_range.min, meta.feature_range.max


def score_batch(
    batch: pa.RecordBatch, first_row: int, ctx: BatchContext, predict: Predict
) -> tuple[pa.RecordBatch, pa.RecordBatch, RunStats]:
    """Validate one batch, predict the valid rows; returns (predictions, rejects, statistics).

    first_row is the 1-based data row number of the batch's first row within its file.
    """
    n = batch.num_rows
    raw = batch.column(ctx.rooms_column)
    checked = features.validate(raw, *ctx.domain, decimal_comma=ctx.decimal_comma)
    rows = np.arange(first_row, first_row + n, dtype="int64")
    stats = RunStats()
    rejects = _rejects(raw, checked, rows, ctx, stats)

    good = np.flatnonzero(checked.valid)
    kept = batch.take(pa.array(good)) if len(good) < n else batch
    rooms = checked.values[good]
    actual = _actual_prices(kept, ctx, len(good))
    pred = np.asarray(predict(rooms), dtype="float32").reshape(-1)
    lo, hi = ctx.feature_range
    below, above = rooms < lo, rooms > hi
    bands = intervals.band(rooms, pred, ctx.interval)
    if bands is None:
        low = high = pa.nulls(len(good), pa.float32())
    else:
        low, high = pa.array(bands[0], pa.float32()), pa.array(bands[1], pa.float32())
    columns = _input_columns(kept, len(good), ctx) + [
        _repeat(ctx.source_file, len(good)),
        pa.array(rows[good]),
        pa.array(pred, pa.float32()),
        low,
        high,
        pa.array(below | above, pa.bool_()),
        _repeat(ctx.model_version, len(good)),
        _repeat(ctx.run_id, len(good)),
        pa.array(rooms, pa.float64()),
        pa.array(actual, pa.float64(), mask=~np.isfinite(actual)),  # no true price: null
    ]
    out = pa.record_batch(columns, schema=ctx.schema)
    if len(good):
        stats.scored = len(good)
        stats.out_of_range = int((below | above).sum())
        stats.below_range, stats.above_range = int(below.sum()), int(above.sum())
        _add_scored(stats, rooms, pred.astype("float64"), actual, bands)
        keys = sample_keys(ctx.sha256, rows[good])
        stats.sample.add(keys, rooms=rooms, pred=pred.astype("float64"), actual=actual)
    return out, rejects, stats


def _rejects(
    raw: pa.Array, checked: features.Validated, rows: np.ndarray, ctx: BatchContext, stats: RunStats
) -> pa.RecordBatch:
    """The rejects of a batch (one row per invalid cell), counted into `stats` by reason."""
    bad = np.flatnonzero(~checked.valid)
    if not len(bad):
        return pa.RecordBatch.from_pylist([], schema=REJECT_SCHEMA)
    codes = checked.codes[bad]
    for code in np.unique(codes):
        stats.rejects[features.REASONS[code - 1]] += int((codes == code).sum())
    reasons = np.array(features.REASONS, dtype=object)[codes - 1]
    rejects = pa.record_batch(
        [
            _repeat(ctx.source_file, len(bad)),
            pa.array(rows[bad]),
            features.raw_text(raw.take(pa.array(bad))),
            pa.array(reasons, pa.string()),
        ],
        schema=REJECT_SCHEMA,
    )
    stats.first_rejects = rejects.slice(0, FIRST_REJECTS).to_pylist()
    numbers = checked.parsed[bad] if checked.parsed is not None else np.full(len(bad), np.nan)
    finite = np.isfinite(numbers)
    if finite.any():  # rejected but still numbers (out of domain): their summary shows units
        nums = numbers[finite]
        stats.rejected_numbers = int(finite.sum())
        stats.rejected_min, stats.rejected_max = float(nums.min()), float(nums.max())
        stats.rejected_sample.add(sample_keys(ctx.sha256, rows[bad][finite]), rooms=nums)
    return rejects


def _input_columns(kept: pa.RecordBatch, n: int, ctx: BatchContext) -> list[pa.Array]:
    """The input columns of the valid rows, in the output schema's order and types; an input
    column fills the output column whose name differs from its own at most in case (one dict
    lookup per column: linear in the column count)."""
    columns = []
    by_case = {str(n).casefold(): n for n in kept.schema.names}
    for f in ctx.schema:
        if f.name in ADDED_COLUMNS:
            continue
        if f.name.casefold() in by_case:
            col = kept.column(by_case[f.name.casefold()])
            if ctx.decimal_comma and f.name in ctx.numbers:
                # Only in columns the plan decided are numbers: '6,5' becomes 6.5; text columns
                # keep their commas.
                col = features.decimal_points(col)
            columns.append(conform(col, f.type))
        else:
            columns.append(pa.nulls(n, f.type))
    # Empty text cells told for all text columns at once (one kernel call, not one per column).
    text = [c for c in columns if pa.types.is_string(c.type) and len(c)]
    if text:
        shortest = pc.min(pc.binary_length(pa.chunked_array(text, pa.string()))).as_py()
        if shortest == 0:
            columns = [_empty_is_null(c) for c in columns]
    return columns


def _empty_is_null(col: pa.Array) -> pa.Array:
    """An empty text cell is null (no value), in every feed alike."""
    if not pa.types.is_string(col.type) or not len(col):
        return col
    empty = pc.fill_null(pc.equal(col, ""), False)
    if not pc.any(empty).as_py():
        return col
    return pc.if_else(empty, pa.scalar(None, col.type), col)


def _actual_prices(kept: pa.RecordBatch, ctx: BatchContext, n: int) -> np.ndarray:
    """The true prices of the valid rows (NaN where the input has none)."""
    if ctx.target_column and ctx.target_column in kept.schema.names:
        actual, _ = features.parse_numbers(kept.column(ctx.target_column), ctx.decimal_comma)
        return actual
    return np.full(n, np.nan)


def _add_scored(
    stats: RunStats,
    rooms: np.ndarray,
    p64: np.ndarray,
    actual: np.ndarray,
    bands: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    """Sums and extremes of the scored rows, and their errors where the true price is known."""
    stats.pred_sum, stats.pred_min, stats.pred_max = (
        float(p64.sum()),
        float(p64.min()),
        float(p64.max()),
    )
    stats.rooms_sum, stats.rooms_sq = float(rooms.sum()), float((rooms**2).sum())
    stats.rooms_min, stats.rooms_max = float(rooms.min()), float(rooms.max())
    stats.rooms_whole = int((rooms == np.round(rooms)).sum())
    has = np.isfinite(actual)
    if not has.any():
        return
    err = p64[has] - actual[has]
    stats.actual_n, stats.sq_err, stats.abs_err = (
        int(has.sum()),
        float((err**2).sum()),
        float(np.abs(err).sum()),
    )
    if bands is not None:
        inside = (actual[has] >= bands[0][has]) & (actual[has] <= bands[1][has])
        stats.band_rows, stats.band_covered = int(has.sum()), int(inside.sum())


def sample_keys(sha256: str, rows: np.ndarray) -> np.ndarray:
    """A pseudo-random key in [0, 1) per (file, row): one sample whatever the batching or engine."""
    x = rows.astype("uint64") + np.uint64(zlib.crc32(sha256.encode()) << 32)
    with np.errstate(over="ignore"):  # splitmix64 wraps around by design
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype("float64") / float(1 << 53)


def _repeat(text: str, n: int) -> pa.Array:
    """`text` n times, as a string array built from its buffers (pa.repeat took over ten times
    as long: three such columns per batch)."""
    data = text.encode()
    if not data or (n + 1) * len(data) >= 1 << 31:  # beyond int32 offsets: pa.repeat says so
        return pa.repeat(pa.scalar(text, pa.string()), n)
    offsets = np.arange(0, (n + 1) * len(data), len(data), dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data * n)]
    )
