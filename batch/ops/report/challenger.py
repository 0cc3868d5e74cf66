"""report.json's `challenger` section: the version scored in the run's shadow (--challenger).

Built from the comparison merged over every part (batch.core.shadow.ShadowStats); the
challenger's label-free estimate is made the way the run's own is (batch.ops.labels.estimate),
from its own error profile and the same sample of scored rooms.
"""

from __future__ import annotations

import numpy as np

from batch.core.documents import ModelMetadata, RunReport
from batch.core.documents.report import ReportChallenger
from batch.core.shadow import ShadowStats
from batch.core.stats import RunStats
from batch.ops.labels.estimate import report_estimate


def _per(total: float, n: int) -> float | None:
    return total / n if n else None


def section(
    version: str, meta: ModelMetadata, shadow: ShadowStats, rep: RunReport, stats: RunStats
) -> ReportChallenger:
    """The challenger section of a run's report (`rep` holds the main version's estimate)."""
    n, k = shadow.rows, shadow.actual_n
    main = rep.estimate.estimated_mae if rep.estimate and rep.estimate.available else None
    mine = None
    if main is not None:
        rooms = stats.sample.cols.get("rooms", np.empty(0))
        mine = report_estimate(meta, rooms, stats.scored).estimated_mae
    return ReportChallenger(
        version=version,
        rows=n,
        mean_abs_diff=_per(shadow.abs_diff, n),
        max_abs_diff=shadow.max_abs_diff if n else None,
        bands_apart=_per(shadow.apart, shadow.band_rows),
        true_price_rows=k,
        mse=_per(shadow.sq_err, k),
        mae=_per(shadow.abs_err, k),
        challenger_mse=_per(shadow.challenger_sq_err, k),
        challenger_mae=_per(shadow.challenger_abs_err, k),
        estimated_mae=main,
        challenger_estimated_mae=mine,
    )
