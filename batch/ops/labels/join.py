"""Matching true prices with one run's predictions, and what the match says (pure: frames in).

A key that appears more than once on either side is ambiguous: its rows are left out of the
join and counted. The labels' unit is checked with the scorer's detector (batch.core.units):
labels in another unit than the model's $K are refused, naming the unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from batch.core import interval_groups, units
from batch.core.documents import RunReport
from batch.core.documents.labels import (
    ChallengerRealized,
    Estimated,
    KeyCounts,
    Realized,
    RoomsDecile,
    RoomsGroup,
)
from batch.core.errors import InputError
from batch.ops.labels.estimate import subset

if TYPE_CHECKING:
    import pandas as pd

DECILES = 10


@dataclass
class Joined:
    """One run's labelled rows (pred, low, high, rooms, label) and the join's counts."""

    rows: pd.DataFrame
    rows_scored: int
    predictions_unlabelled: int
    labels_unmatched: int
    duplicates: KeyCounts


def join(labels: pd.DataFrame, predictions: pd.DataFrame) -> Joined:
    """The prediction rows whose key has exactly one label (unique keys on both sides)."""
    label_counts = labels["key"].value_counts()
    pred_counts = predictions["key"].value_counts()
    unique_labels = labels[labels["key"].map(label_counts) == 1]
    unique_preds = predictions[predictions["key"].map(pred_counts).fillna(0) == 1]
    rows = unique_preds.merge(unique_labels, on="key", how="inner", sort=False)
    matched = set(rows["key"])
    return Joined(
        rows=rows,
        rows_scored=len(predictions),
        predictions_unlabelled=len(predictions) - len(rows),
        labels_unmatched=int((~unique_labels["key"].isin(matched)).sum()),
        duplicates=KeyCounts(
            labels=int((label_counts > 1).sum()), predictions=int((pred_counts > 1).sum())
        ),
    )


def check_unit(rows: pd.DataFrame, column: str, run_id: str) -> str | None:
    """The labels' unit ($K), None when too few rows say; InputError for any other unit."""
    unit = units.detect(rows["label"].to_numpy(), rows["pred"].to_numpy())
    if unit.decided and unit.name != "$K":
        todo = unit.convert or "find the column's unit and convert it to $K"
        raise InputError(
            f"the labels in {column!r} are about {unit.ratio:.3g} times run {run_id}'s "
            f"predictions: they look like {unit.name}, not the model's $K (thousands of "
            f"dollars); nothing was written — {todo}, then join again"
        )
    return unit.name if unit.decided else None


def realized(rows: pd.DataFrame, level: float | None) -> Realized:
    """MAE, RMSE, MSE, bias and band coverage of the labelled rows."""
    err = rows["pred"].to_numpy("float64") - rows["label"].to_numpy("float64")
    mse = float(np.mean(err**2))
    inside, banded = _inside(rows)
    return Realized(
        mae=float(np.mean(np.abs(err))),
        rmse=float(np.sqrt(mse)),
        mse=mse,
        bias=float(np.mean(err)),
        coverage=float(inside.mean()) if banded else None,
        band_rows=banded,
        level=level,
    )


def _inside(rows: pd.DataFrame) -> tuple[np.ndarray, int]:
    """(inside the band, for rows with one; how many rows have one)."""
    low, high = rows["low"].to_numpy("float64"), rows["high"].to_numpy("float64")
    label = rows["label"].to_numpy("float64")
    has = np.isfinite(low) & np.isfinite(high)
    inside = (label[has] >= low[has]) & (label[has] <= high[has])
    return inside, int(has.sum())


def estimated(rows: pd.DataFrame, report: RunReport) -> Estimated:
    """The label-free estimate for the labelled rows (from the run report's error profile)."""
    est = report.estimate
    if est is None or est.profile is None:
        note = (
            est.note
            if est is not None and est.note
            else "the run's report has no error profile (scored before the label-free "
            "estimate existed)"
        )
        return Estimated(
            available=False, method=None, mae=None, coverage=None, run_mae=None, note=note
        )
    found = subset(rows["rooms"].to_numpy("float64"), est.profile)
    return Estimated(
        available=found is not None,
        method=est.method,
        mae=None if found is None else found[0],
        coverage=None if found is None else found[1],
        run_mae=est.estimated_mae,
        note=None if found is not None else "no labelled row has a usable rooms value",
    )


def deciles(rows: pd.DataFrame, report: RunReport) -> list[RoomsDecile]:
    """MAE, coverage and estimated MAE per decile of the labelled rows' rooms."""
    rooms = rows["rooms"].to_numpy("float64")
    ok = np.isfinite(rooms)
    if not ok.any():
        return []
    cuts = np.unique(np.quantile(rooms[ok], np.linspace(0, 1, DECILES + 1)[1:-1]))
    which = np.full(len(rooms), -1)
    which[ok] = np.searchsorted(cuts, rooms[ok], side="right")
    profile = report.estimate.profile if report.estimate is not None else None
    out: list[RoomsDecile] = []
    for i in range(len(cuts) + 1):
        part = rows[which == i]
        if not len(part):
            continue
        inside, banded = _inside(part)
        err = np.abs(part["pred"].to_numpy("float64") - part["label"].to_numpy("float64"))
        est = None if profile is None else subset(part["rooms"].to_numpy("float64"), profile)
        out.append(
            RoomsDecile(
                decile=len(out) + 1,
                rooms_min=float(part["rooms"].min()),
                rooms_max=float(part["rooms"].max()),
                rows=len(part),
                mae=float(err.mean()),
                coverage=float(inside.mean()) if banded else None,
                estimated_mae=None if est is None else est[0],
            )
        )
    return out


def groups(rows: pd.DataFrame, report: RunReport) -> list[RoomsGroup] | None:
    """MAE and coverage per rooms group of a band calibrated per group (the groups of the run's
    report, each labelled row placed as the scorer placed it); None for a global band."""
    found = report.interval.groups if report.interval is not None else None
    if not found:
        return None
    rooms = rows["rooms"].to_numpy("float64")
    edges = [g.rooms_to for g in found[:-1] if g.rooms_to is not None]
    which = interval_groups.group_of(rooms, edges)
    which[~np.isfinite(rooms)] = -1
    out = []
    for i, group in enumerate(found):
        part = rows[which == i]
        inside, banded = _inside(part)
        err = np.abs(part["pred"].to_numpy("float64") - part["label"].to_numpy("float64"))
        out.append(
            RoomsGroup(
                rooms_from=group.rooms_from,
                rooms_to=group.rooms_to,
                rows=len(part),
                mae=float(err.mean()) if len(part) else None,
                coverage=float(inside.mean()) if banded else None,
            )
        )
    return out


def challenger(rows: pd.DataFrame, report: RunReport) -> ChallengerRealized | None:
    """The challenger's MAE and MSE beside the main version's, on the labelled rows that have
    both predictions (what promote --require-shadow weighs); None without a challenger."""
    if report.challenger is None or "challenger" not in rows:
        return None
    both = rows[np.isfinite(rows["challenger"].to_numpy("float64"))]
    if not len(both):
        return None
    label = both["label"].to_numpy("float64")
    err = both["challenger"].to_numpy("float64") - label
    main = both["pred"].to_numpy("float64") - label
    return ChallengerRealized(
        version=report.challenger.version,
        rows=len(both),
        mae=float(np.mean(np.abs(err))),
        mse=float(np.mean(err**2)),
        main_mae=float(np.mean(np.abs(main))),
        main_mse=float(np.mean(main**2)),
    )
