"""The price band explained: its width per rooms decile and, where the input has true prices,
its coverage per decile; and how many low ends were lifted to $0.

Computed from the run's uniform random sample of scored rows (at most 20,000; every row of a
smaller run), with the band recomputed exactly as the scorer drew it (batch.core.intervals).
Pure: the statistics and the model's band in, typed rows out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from batch.core import interval_groups, intervals
from batch.core.documents import ModelMetadata
from batch.core.documents.report import BandDecile, BandGroup
from batch.core.stats import RunStats

DECILES = 10


def lifted_to_zero(stats: RunStats, meta: ModelMetadata) -> int | None:
    """Sampled rows whose band's low end fell below the least price and shows as it (None: no
    band)."""
    params = None if meta.interval is None else meta.interval.model_dump(mode="json")
    cols = stats.sample.cols
    rooms, pred = cols.get("rooms"), cols.get("pred")
    if params is None or rooms is None or pred is None or params.get("lower_bound") is None:
        return None
    half = interval_groups.quantile_at(rooms, params) * intervals.scale(rooms, params)
    return int((np.asarray(pred, "float64") - half < params["lower_bound"]).sum())


def _sampled(
    stats: RunStats, meta: ModelMetadata
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]] | None:
    """(rooms, true price or NaN, low, high, band) of the sampled rows; None without a band."""
    params = None if meta.interval is None else meta.interval.model_dump(mode="json")
    cols = stats.sample.cols
    rooms, pred = cols.get("rooms"), cols.get("pred")
    if params is None or rooms is None or pred is None or not len(rooms):
        return None
    rooms = np.asarray(rooms, "float64")
    actual = np.asarray(cols.get("actual", np.full(len(rooms), np.nan)), "float64")
    found = intervals.band(rooms, np.asarray(pred, "float64"), params)
    assert found is not None
    low, high = (np.asarray(b, "float64") for b in found)
    return rooms, actual, low, high, params


def deciles(stats: RunStats, meta: ModelMetadata) -> list[BandDecile] | None:
    """One row per rooms decile of the sample: its rooms range, rows, mean band width ($K) and
    coverage of the true prices (None without true prices); None when there is no band."""
    sampled = _sampled(stats, meta)
    if sampled is None:
        return None
    rooms, actual, low, high, _ = sampled
    order = np.argsort(rooms, kind="stable")
    rows = []
    for chunk in np.array_split(order, min(DECILES, len(order))):
        has = np.isfinite(actual[chunk])
        inside = (actual[chunk] >= low[chunk]) & (actual[chunk] <= high[chunk])
        rows.append(
            BandDecile(
                rooms_min=float(rooms[chunk].min()),
                rooms_max=float(rooms[chunk].max()),
                rows=len(chunk),
                mean_width=float((high[chunk] - low[chunk]).mean()),
                rows_with_price=int(has.sum()),
                coverage=float(inside[has].mean()) if has.any() else None,
            )
        )
    return rows


def groups(stats: RunStats, meta: ModelMetadata) -> list[BandGroup] | None:
    """One row per rooms group the band was calibrated on (each sampled row in its group, as
    the scorer placed it): rows, mean width and coverage; None for a band without groups."""
    sampled = _sampled(stats, meta)
    if sampled is None or not sampled[4].get("groups"):
        return None
    rooms, actual, low, high, params = sampled
    calibrated = params["groups"]
    which = interval_groups.group_of(rooms, calibrated["edges"])
    rows = []
    for i, group in enumerate(calibrated["groups"]):
        mine = which == i
        has = mine & np.isfinite(actual)
        inside = (actual[has] >= low[has]) & (actual[has] <= high[has])
        rows.append(
            BandGroup(
                rooms_from=group["rooms_from"],
                rooms_to=group["rooms_to"],
                rows=int(mine.sum()),
                mean_width=float((high[mine] - low[mine]).mean()) if mine.any() else None,
                rows_with_price=int(has.sum()),
                coverage=float(inside.mean()) if has.any() else None,
            )
        )
    return rows
