"""Shadow scoring: a challenger version scored on the same rows as the main one (pure).

`shadow_batch` takes a batch as `rules.score_batch` built it, adds the challenger's columns and
returns the batch's comparison statistics; `ShadowStats` merges exactly, like `RunStats`, so
batches, files and Dask parts combine into the same totals without keeping rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from batch.core import intervals
from batch.core.rules import HIGH, LOW, PREDICTION, ROOMS_USED, TARGET_USED, Predict

PREFIX = "challenger_"
CHALLENGER_FIELDS = pa.schema(
    [
        pa.field(PREFIX + PREDICTION, pa.float32()),
        pa.field(PREFIX + LOW, pa.float32()),
        pa.field(PREFIX + HIGH, pa.float32()),
        pa.field(PREFIX + "model_version", pa.string()),
    ]
)


@dataclass
class ShadowStats:
    """Sums over the scored rows: the two predictions' gap, the bands' overlap, both errors."""

    rows: int = 0
    abs_diff: float = 0.0  # sum of |challenger - main|
    max_abs_diff: float = 0.0
    band_rows: int = 0  # rows where both versions have a band
    apart: int = 0  # of those, rows whose two bands do not overlap
    actual_n: int = 0  # rows with a true price
    sq_err: float = 0.0  # the main version's, over those rows
    abs_err: float = 0.0
    challenger_sq_err: float = 0.0
    challenger_abs_err: float = 0.0

    def merge(self, o: ShadowStats) -> None:
        for name in self.__dataclass_fields__:
            if name != "max_abs_diff":
                setattr(self, name, getattr(self, name) + getattr(o, name))
        self.max_abs_diff = max(self.max_abs_diff, o.max_abs_diff)


def _floats(col: pa.Array) -> np.ndarray:
    """A float column as float64, null as NaN."""
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype="float64")


def shadow_batch(
    out: pa.RecordBatch, predict: Predict, interval: dict[str, Any] | None, version: str
) -> tuple[pa.RecordBatch, ShadowStats]:
    """The batch with the challenger's columns appended, and the two versions compared."""
    n = out.num_rows
    rooms = _floats(out.column(ROOMS_USED))
    pred = np.asarray(predict(rooms), dtype="float32").reshape(-1)
    bands = intervals.band(rooms, pred, interval)
    if bands is None:
        low = high = pa.nulls(n, pa.float32())
    else:
        low, high = pa.array(bands[0], pa.float32()), pa.array(bands[1], pa.float32())
    columns = [
        *out.columns,
        pa.array(pred, pa.float32()),
        low,
        high,
        pa.repeat(pa.scalar(version, pa.string()), n),
    ]
    schema = pa.schema(list(out.schema) + list(CHALLENGER_FIELDS))
    stats = ShadowStats()
    if n:
        _compare(stats, out, pred.astype("float64"), bands)
    return pa.record_batch(columns, schema=schema), stats


def _compare(
    stats: ShadowStats,
    out: pa.RecordBatch,
    challenger: np.ndarray,
    bands: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    main = _floats(out.column(PREDICTION))
    diff = np.abs(challenger - main)
    stats.rows, stats.abs_diff, stats.max_abs_diff = len(main), float(diff.sum()), float(diff.max())
    main_low, main_high = _floats(out.column(LOW)), _floats(out.column(HIGH))
    if bands is not None and not np.isnan(main_low).all():
        low, high = bands[0].astype("float64"), bands[1].astype("float64")
        stats.band_rows = len(main)
        stats.apart = int(((low > main_high) | (main_low > high)).sum())
    actual = _floats(out.column(TARGET_USED))
    has = np.isfinite(actual)
    if has.any():
        err, cerr = main[has] - actual[has], challenger[has] - actual[has]
        stats.actual_n = int(has.sum())
        stats.sq_err, stats.abs_err = float((err**2).sum()), float(np.abs(err).sum())
        stats.challenger_sq_err = float((cerr**2).sum())
        stats.challenger_abs_err = float(np.abs(cerr).sum())
