"""What the report judges: drift of the input's rooms from the training data's, rejected rooms
that are still numbers, and whether the true prices are in the model's unit ($K).

Pure: the run's statistics and the model's metadata in, typed report sections out, each with
its warnings in plain words.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from batch.core.documents import ModelMetadata
from batch.core.documents.report import (
    Drift,
    DriftInput,
    DriftTraining,
    RejectedRooms,
    TargetCheck,
)
from batch.core.stats import FileStats, RunStats

DRIFT_MEAN_SD = 0.5  # |input mean - training mean| in training standard deviations
DRIFT_SPREAD = (0.5, 2.0)  # input std / training std outside this is marked
DRIFT_OUTSIDE = 0.05  # share of rows outside the training range
DRIFT_MIN_ROWS = 30  # fewer scored rows than this: too few to say there is no drift
WHOLE_SHARE = 0.9  # this share of whole-number rooms: a feed of rooms per house, not averages
REJECTED_NUMBERS_SHARE = 0.05  # rows rejected while still numbers: a unit problem, not typos
UNIT_RATIO = 5.0  # true prices this many times off the predictions (either way): another unit


# -- the unit of the true prices --------------------------------------------------------------


def target_check(stats: RunStats, files: list[FileStats], settings: Any) -> TargetCheck:
    """Which true-price column was used, and whether its prices are in the model's unit ($K)."""
    used = sorted({f.target_column for f in files if f.target_column})
    requested = settings.target_column
    warnings: list[str] = []
    if (
        not used
        and requested
        and "target_column" in settings.model_fields_set
        and any(f.rooms_column for f in files)
    ):
        warnings.append(
            f"No input has a column named {requested!r} (--target-column), so no "
            "MSE/MAE could be measured; check the spelling."
        )
    sample = stats.sample.cols
    actual, pred = sample.get("actual", np.empty(0)), sample.get("pred", np.empty(0))
    ok = np.isfinite(actual) & np.isfinite(pred) & (pred > 0) if len(actual) else np.zeros(0, bool)
    ratio, comparable = None, None
    if ok.sum() >= 5:
        ratio = float(np.median(actual[ok] / pred[ok]))
        comparable = 1 / UNIT_RATIO <= ratio <= UNIT_RATIO
        if comparable and ok.sum() >= 20:
            spread = float(np.std(actual[ok]) / max(np.std(pred[ok]), 1e-9))
            comparable = spread >= 1 / UNIT_RATIO  # log prices: right size, almost no spread
        if not comparable:
            warnings.append(
                f"The true prices in {', '.join(repr(u) for u in used)} are about {ratio:.3g} "
                f"times the predictions, which are in thousands of dollars ($K): they look like "
                f"{_likely_unit(ratio, actual[ok])}. MSE and MAE compare different units and are "
                "not comparable; convert the column to $K."
            )
    return TargetCheck(
        column=used[0] if len(used) == 1 else (used or None),
        requested=requested,
        scale_ratio=ratio,
        comparable=comparable,
        warnings=warnings,
    )


def _likely_unit(ratio: float, actual: np.ndarray) -> str:
    if 300 <= ratio <= 3000:
        return "dollars rather than $K"
    if 0.003 <= ratio <= 0.03:
        return "hundreds of thousands of dollars ($100K) rather than $K"
    if float(np.median(actual)) < 20 and float(np.std(actual)) < 2:
        return "logarithms of prices"
    return "another unit or scale"


# -- rejected rooms that are numbers ----------------------------------------------------------


def rejected_rooms(stats: RunStats) -> RejectedRooms:
    """The rooms values that were rejected but are numbers (out of the domain): count, min,
    p50, max."""
    values = stats.rejected_sample.cols.get("rooms", np.empty(0))
    n = stats.rejected_numbers
    return RejectedRooms(
        count=n,
        min=stats.rejected_min if n else None,
        p50=float(np.median(values)) if len(values) else None,
        max=stats.rejected_max if n else None,
        estimated=["p50"] if n > len(values) else [],
    )


# -- drift ------------------------------------------------------------------------------------


def drift(stats: RunStats, meta: ModelMetadata, rejected: RejectedRooms | None = None) -> Drift:
    """The input's rooms beside the training data's, with plain-words warnings when they differ.

    It looks at the whole feed: the scored rows, and the rejected rows that are still numbers.
    """
    n = stats.scored
    current = DriftInput(count=n)
    warnings: list[str] = []
    if n:
        current = _input_rooms(stats)
        warnings += _against_training(current, meta)
        warnings += _feed_shape(stats, meta)
    warnings += _rejected_numbers(stats, rejected)
    if warnings:
        warnings.append(
            "The input differs markedly from what the model was trained on: check the "
            "source data, or retrain on data like it."
        )
    verdict = (
        "differs_markedly"
        if warnings
        else ("too_few_rows" if n < DRIFT_MIN_ROWS else "no_marked_difference")
    )
    train, fr = meta.feature_stats, meta.feature_range
    training = DriftTraining(
        count=train.count,
        mean=train.mean,
        std=train.std,
        min=fr.min,
        max=fr.max,
        share_outside_training_range=0.0,
    )
    return Drift(
        input=current,
        training=training,
        differs_markedly=bool(warnings),
        verdict=verdict,
        warnings=warnings,
    )


def _input_rooms(stats: RunStats) -> DriftInput:
    """Count, mean, spread and range of the scored rows' rooms (at least one row)."""
    n = stats.scored
    mean = stats.rooms_sum / n
    return DriftInput(
        count=n,
        mean=mean,
        std=math.sqrt(max(stats.rooms_sq / n - mean**2, 0.0)),
        min=stats.rooms_min,
        max=stats.rooms_max,
        share_outside_training_range=stats.out_of_range / n,
        share_whole_numbers=stats.rooms_whole / n,
    )


def _against_training(current: DriftInput, meta: ModelMetadata) -> list[str]:
    """The input's mean and spread against the training data's (sets the gap and ratio)."""
    warnings: list[str] = []
    mean, std, n = current.mean, current.std, current.count
    t_mean, t_std = meta.feature_stats.mean, meta.feature_stats.std
    if mean is None or std is None or not t_std:
        return warnings
    gap = abs(mean - t_mean) / t_std
    current.mean_gap_in_training_sd = gap
    if gap > DRIFT_MEAN_SD:
        warnings.append(
            f"The average number of rooms in this input ({mean:.2f}) is {gap:.1f} training "
            f"standard deviations away from the training data's ({t_mean:.2f})."
        )
    if n >= DRIFT_MIN_ROWS and t_std > 0:
        ratio = std / t_std
        current.spread_ratio = ratio
        if not DRIFT_SPREAD[0] <= ratio <= DRIFT_SPREAD[1]:
            warnings.append(
                f"The spread of rooms in this input (sd {std:.2f}) is "
                f"{ratio:.1f} times the training data's (sd {t_std:.2f})."
            )
    return warnings


def _feed_shape(stats: RunStats, meta: ModelMetadata) -> list[str]:
    """Rows outside the training range, and whole-number rooms (rooms per house)."""
    warnings: list[str] = []
    n, fr = stats.scored, meta.feature_range
    share = stats.out_of_range / n
    if share > DRIFT_OUTSIDE:
        warnings.append(
            f"{share:.0%} of the scored rows have rooms outside the training range "
            f"{fr.min:.2f}-{fr.max:.2f}; there the model extrapolates a straight line and "
            "its prices deserve less trust."
        )
    if n >= DRIFT_MIN_ROWS and stats.rooms_whole / n >= WHOLE_SHARE:
        warnings.append(
            f"{stats.rooms_whole / n:.0%} of the rooms values are whole numbers; a suburb's "
            "average number of rooms almost never is: the feed may hold rooms per house "
            "rather than suburb averages."
        )
    return warnings


def _rejected_numbers(stats: RunStats, rejected: RejectedRooms | None) -> list[str]:
    """Many rejected rows that are still numbers: the feed may use another unit."""
    read = stats.scored + stats.rejected
    if not rejected or not read or rejected.count / read <= REJECTED_NUMBERS_SHARE:
        return []
    return [
        f"{rejected.count:,} rows ({rejected.count / read:.0%}) were rejected although "
        f"their rooms are numbers (from {rejected.min:.4g} to {rejected.max:.4g}, "
        f"median {rejected.p50:.4g}), outside the plausible range: the feed may use another "
        "unit (rooms squared? rooms per building?)."
    ]
