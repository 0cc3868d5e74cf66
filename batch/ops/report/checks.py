"""What the report judges: drift of the input's rooms from the training data's, rejected rooms
that are still numbers, and whether the true prices are in the model's unit ($K).

Pure: the run's statistics and the model's metadata in, typed report sections out, each with
its warnings in plain words.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from batch.core import comparable, units
from batch.core import drift as rules
from batch.core.documents import ModelMetadata
from batch.core.documents.report import (
    Drift,
    DriftCheck,
    DriftInput,
    DriftTraining,
    RejectedRooms,
    TargetCheck,
)
from batch.core.stats import FileStats, RunStats

REJECTED_NUMBERS_SHARE = 0.05  # rows rejected while still numbers: a unit problem, not typos


# -- the unit of the true prices --------------------------------------------------------------


def target_check(
    stats: RunStats, files: list[FileStats], settings: Any
) -> tuple[TargetCheck, list[comparable.Flag]]:
    """Which true-price column was used, and whether its prices are in the model's unit ($K);
    with its warnings and their kinds (target: a column not found; units: another unit)."""
    used = sorted({f.target_column for f in files if f.target_column})
    requested = settings.target_column
    flags: list[comparable.Flag] = []
    if (
        not used
        and requested
        and "target_column" in settings.model_fields_set
        and any(f.rooms_column for f in files)
    ):
        flags.append(
            comparable.Flag(
                comparable.TARGET,
                f"No input has a column named {requested!r} (--target-column), so no "
                "MSE/MAE could be measured; check the spelling.",
            )
        )
    sample = stats.sample.cols
    actual, pred = sample.get("actual", np.empty(0)), sample.get("pred", np.empty(0))
    unit = units.detect(actual, pred)
    warning = unit.warning(used[0] if len(used) == 1 else ", ".join(used))
    if warning:
        flags.append(comparable.Flag(comparable.UNITS, warning))
    check = TargetCheck(
        column=used[0] if len(used) == 1 else (used or None),
        requested=requested,
        scale_ratio=unit.ratio,
        comparable=unit.is_training_unit,
        unit=unit.name if unit.decided else None,
        warnings=[f.message for f in flags],
    )
    return check, flags


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

    Each check is a test that knows its sample size (batch.core.drift); it looks at the whole
    feed: the scored rows, and the rejected rows that are still numbers.
    """
    n = stats.scored
    current = DriftInput(count=n)
    warnings: list[str] = []
    found: list[rules.Check] = []
    if n:
        current = _input_rooms(stats)
        found = _checks(stats, current, meta)
        warnings += _sentences(found, current, meta)
    warnings += _rejected_numbers(stats, rejected)
    if warnings:
        warnings.append(
            "The input differs markedly from what the model was trained on: check the "
            "source data, or retrain on data like it."
        )
    verdict = (
        "differs_markedly"
        if warnings
        else ("too_few_rows" if n < rules.MIN_ROWS else "no_marked_difference")
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
        alpha=rules.ALPHA,
        checks=[_document(c) for c in found],
        warnings=warnings,
    )


def _document(check: rules.Check) -> DriftCheck:
    fields = dataclasses.asdict(check)
    if not math.isfinite(check.statistic):
        fields["statistic"] = None  # a feed of one repeated value: z is -infinity
    return DriftCheck(**fields)


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


def _checks(stats: RunStats, current: DriftInput, meta: ModelMetadata) -> list[rules.Check]:
    """The sample-size-aware tests; sets the input's gap and spread ratio as they say."""
    sample = rules.Sample(
        n=stats.scored,
        mean=current.mean or 0.0,
        std=current.std or 0.0,
        outside=stats.out_of_range,
        whole=stats.rooms_whole,
    )
    t = meta.feature_stats
    found = rules.checks(sample, rules.Training(n=t.count, mean=t.mean, std=t.std))
    for check in found:
        if check.name == "mean":
            current.mean_gap_in_training_sd = check.effect
        elif check.name == "spread":
            current.spread_ratio = check.effect
    return found


def _sentences(found: list[rules.Check], current: DriftInput, meta: ModelMetadata) -> list[str]:
    """A plain-words warning for each failing check."""
    failing = {c.name: c for c in found if c.fails}
    t, fr = meta.feature_stats, meta.feature_range
    warnings: list[str] = []
    if "mean" in failing:
        warnings.append(
            f"The average number of rooms in this input ({current.mean:.2f}) is "
            f"{failing['mean'].effect:.1f} training standard deviations away from the "
            f"training data's ({t.mean:.2f})."
        )
    if "spread" in failing:
        warnings.append(
            f"The spread of rooms in this input (sd {current.std:.2f}) is "
            f"{failing['spread'].effect:.1f} times the training data's (sd {t.std:.2f})."
        )
    if "outside_training_range" in failing:
        warnings.append(
            f"{failing['outside_training_range'].effect:.0%} of the scored rows have rooms "
            f"outside the training range {fr.min:.2f}-{fr.max:.2f}; there the model "
            "extrapolates a straight line and its prices deserve less trust."
        )
    if "whole_numbers" in failing:
        warnings.append(
            f"{failing['whole_numbers'].effect:.0%} of the rooms values are whole numbers; a "
            "suburb's average number of rooms almost never is: the feed may hold rooms per "
            "house rather than suburb averages."
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
