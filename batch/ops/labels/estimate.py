"""The label-free estimate of a run's error: report.json's `estimate` section.

The model's metadata holds its error profile (the calibration rows' absolute errors as a hinge in
rooms, and the band's coverage per rooms quartile); the estimate averages it over the scored
rows' rooms (their uniform sample when a run has more rows than the sample holds).
"""

from __future__ import annotations

import numpy as np

from batch.core import intervals
from batch.core.documents import ModelMetadata
from batch.core.documents.metadata import ErrorProfile
from batch.core.documents.report import ReportEstimate

NO_PROFILE = (
    "the model version has no error profile (trained before the label-free estimate); "
    "re-train to get one"
)


def subset(rooms: np.ndarray, profile: ErrorProfile) -> tuple[float, float | None] | None:
    """(estimated MAE, estimated coverage) for rows with these rooms; None for no rows."""
    return intervals.estimate(rooms, profile.model_dump(mode="json"))


def report_estimate(meta: ModelMetadata, rooms: np.ndarray, scored: int) -> ReportEstimate:
    """The estimate of a run's error from its scored rows' rooms (`scored` rows in all)."""
    profile = meta.error_profile
    if profile is None:
        return ReportEstimate(available=False, note=NO_PROFILE)
    found = subset(rooms, profile)
    if found is None:
        return ReportEstimate(
            available=False,
            method=profile.method,
            calibration_mae=profile.mae,
            profile=profile,
            note="no rows were scored",
        )
    mae, coverage = found
    return ReportEstimate(
        available=True,
        method=profile.method,
        estimated_mae=mae,
        estimated_coverage=coverage,
        calibration_mae=profile.mae,
        rows=int(len(rooms)),
        sampled=scored > len(rooms),
        profile=profile,
    )
