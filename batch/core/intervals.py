"""Calibrated price bands: split-conformal intervals whose width follows rooms (pure numpy)."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from batch.core import interval_groups

log = logging.getLogger(__name__)

METHOD = "split-conformal, locally scaled"
# The scale never drops below this share of the mean absolute residual, so a band is never
# zero-width where the scale model's line happens to dip (a few rows can pull it down).
SCALE_FLOOR_SHARE = 0.25


def fit_scale(x: np.ndarray, residuals: np.ndarray) -> dict[str, float]:
    """Least-squares hinge model of |residual| vs rooms: a + b_low·(c - x)+ + b_high·(x - c)+.

    c is the median of x; each side gets its own slope because the residuals of a line through
    this data grow faster above the typical suburb than below it. A side whose slope comes out
    negative is refitted without it (a flat side): the scale must never shrink away from c.
    """
    x = np.asarray(x, "float64").reshape(-1)
    a_res = np.abs(np.asarray(residuals, "float64").reshape(-1))
    if len(x) == 0:
        raise ValueError("fit_scale needs at least one row")
    center = float(np.median(x))
    mean_abs = float(a_res.mean())
    below, above = np.maximum(center - x, 0.0), np.maximum(x - center, 0.0)
    sides = {"slope_below": below, "slope_above": above}
    coef = {"slope_below": 0.0, "slope_above": 0.0}
    intercept = mean_abs
    active = [name for name, col in sides.items() if np.ptp(col) > 0]
    while active:
        design = np.column_stack([np.ones_like(x)] + [sides[name] for name in active])
        solution, *_ = np.linalg.lstsq(design, a_res, rcond=None)
        negative = [name for name, value in zip(active, solution[1:]) if value < 0]
        if not negative:
            intercept = float(solution[0])
            coef.update({name: float(v) for name, v in zip(active, solution[1:])})
            break
        active = [name for name in active if name not in negative]
    else:
        intercept = mean_abs
    floor = SCALE_FLOOR_SHARE * mean_abs if mean_abs > 0 else 1.0
    return {"center": center, "intercept": intercept, **coef, "floor": floor}


def scale(rooms: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """The scale model at `rooms` (float64), never below its floor."""
    x = np.asarray(rooms, "float64").reshape(-1)
    s = params["scale"]
    c = s["center"]
    value = (
        s["intercept"]
        + s["slope_below"] * np.maximum(c - x, 0.0)
        + s["slope_above"] * np.maximum(x - c, 0.0)
    )
    floored: np.ndarray = np.maximum(value, s["floor"])
    return floored


def conformal_rank(n: int, level: float) -> int:
    """The 1-based rank k = ceil((n + 1)·level) of the score that gives coverage >= level."""
    return math.ceil(
        (n + 1) * level - 1e-9
    )  # the epsilon keeps 0.9 * 10 from becoming 10.000000001


def calibrate(
    x_cal: np.ndarray,
    y_cal: np.ndarray,
    pred_cal: np.ndarray,
    level: float,
    *,
    x_scale: np.ndarray | None = None,
    residuals_scale: np.ndarray | None = None,
    lower_bound: float | None = None,
    groups: str = "none",
) -> dict[str, Any]:
    """Split-conformal band parameters for `level`, from held-out calibration rows.

    Score of a row: |y - pred| / scale(rooms). The band is pred ± q·scale(rooms), where q is
    the ceil((n + 1)·level)-th smallest calibration score, so a new row exchangeable with the
    calibration rows falls inside with probability >= level (and < level + 1/(n + 1)).
    The scale model is fitted on (x_scale, residuals_scale) — rows other than the calibration
    rows, which keeps that guarantee exact; without them it is fitted on the calibration rows
    themselves (a slight reuse that the guarantee does not cover).
    lower_bound: the least value the target can take (0 for a price); band() never reaches
    below it, which can only raise coverage.
    groups: "none" (one quantile for all rows) or "rooms_decile": besides the global quantile,
    one per rooms group of the calibration rows (batch.core.interval_groups), each from its own
    rows' scores, so the promise holds within each group (Mondrian split conformal).
    Returns JSON-ready parameters for band().
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (exclusive), got {level!r}")
    x, resid = _calibration_rows(x_cal, y_cal, pred_cal)
    if x_scale is None or residuals_scale is None:
        scale_params = fit_scale(x, resid)
        scale_rows = "calibration"
    else:
        scale_params = fit_scale(x_scale, residuals_scale)
        scale_rows = "separate"
    params: dict[str, Any] = {
        "method": METHOD,
        "level": float(level),
        "calibration_rows": len(x),
        "scale_rows": scale_rows,
        "scale": scale_params,
        "lower_bound": None if lower_bound is None else float(lower_bound),
    }
    scores = np.abs(resid) / scale(x, params)
    params.update(_quantile(np.sort(scores), level))
    if groups != "none":
        params["groups"] = _group_quantiles(x, scores, level, groups)
    return params


def min_rows(level: float) -> int:
    """The fewest calibration rows n whose conformal rank ceil((n + 1)·level) is at most n
    (9 at 0.9, 19 at 0.95): with fewer, the guarantee needs an unbounded band."""
    n = 1
    while conformal_rank(n, level) > n:
        n += 1
    return n


def _group_quantiles(x: np.ndarray, scores: np.ndarray, level: float, by: str) -> dict[str, Any]:
    """The rooms groups of the calibration rows and each one's conformal quantile."""
    if by != interval_groups.BY:
        raise ValueError(f"unknown interval groups {by!r}")
    need = min_rows(level)
    edges = interval_groups.rooms_groups(x, need)
    which = interval_groups.group_of(x, edges)
    bounds: list[float | None] = [None, *edges, None]
    groups = []
    for g in range(len(edges) + 1):
        mine = np.sort(scores[which == g])
        groups.append(
            {
                "rooms_from": bounds[g],
                "rooms_to": bounds[g + 1],
                "rows": len(mine),
                **_quantile(mine, level),
            }
        )
    return {"by": by, "min_rows": need, "edges": edges, "groups": groups}


def _calibration_rows(
    x_cal: np.ndarray, y_cal: np.ndarray, pred_cal: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(rooms, residuals) of the calibration rows as float64; ValueError when they are unusable."""
    x = np.asarray(x_cal, "float64").reshape(-1)
    resid = np.asarray(y_cal, "float64").reshape(-1) - np.asarray(pred_cal, "float64").reshape(-1)
    if len(x) == 0 or len(resid) != len(x):
        raise ValueError(
            f"calibration needs rows with x, y and pred of equal length "
            f"(got {len(x)} and {len(resid)})"
        )
    if not np.all(np.isfinite(x)) or not np.all(np.isfinite(resid)):
        raise ValueError("calibration rows must be finite")
    return x, resid


def _quantile(scores: np.ndarray, level: float) -> dict[str, Any]:
    """The conformal quantile of sorted `scores` for `level`, its rank, and whether it holds."""
    params: dict[str, Any] = {}
    n = len(scores)
    k = conformal_rank(n, level)
    if k > n:
        # Too few rows for this level: the exact answer is an unbounded band. The largest
        # score is the best finite stand-in, and the metadata says the guarantee does not hold.
        log.warning(
            "only %d calibration rows: too few for a %.3g band's guarantee (needs %d); "
            "using the largest score",
            n,
            level,
            math.ceil(level / (1 - level)),
        )
        k = n
        params["guaranteed"] = False
    else:
        params["guaranteed"] = True
    params["quantile_rank"] = k
    params["quantile"] = float(scores[k - 1])
    return params


def band(
    rooms: np.ndarray, pred: np.ndarray, params: dict[str, Any] | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """(low, high) float32 around `pred` at `rooms`; None for a version without calibration.

    low <= pred <= high holds for every finite row: the half-width is never negative, float32
    rounding of pred ± w cannot cross pred, and the lower bound (a price is never negative)
    lifts low at most up to pred.
    """
    if params is None:
        return None
    pred32 = np.asarray(pred, "float32").reshape(-1)
    half = (interval_groups.quantile_at(rooms, params) * scale(rooms, params)).astype("float32")
    low = pred32 - half
    high = pred32 + half
    if params.get("lower_bound") is not None:
        low = np.minimum(np.maximum(low, np.float32(params["lower_bound"])), pred32)
    return low, high


def coverage(y: np.ndarray, low: np.ndarray, high: np.ndarray) -> float | None:
    """Share of rows with low <= y <= high (None for no rows)."""
    y = np.asarray(y, "float64").reshape(-1)
    if len(y) == 0:
        return None
    inside = (y >= np.asarray(low, "float64")) & (y <= np.asarray(high, "float64"))
    return float(inside.mean())


# -- the label-free estimate of tonight's error ---------------------------------------------------

ESTIMATE_METHOD = "calibration residuals, hinge in rooms"
COVERAGE_BINS = 4  # quartiles of the calibration rows' rooms (about 30 rows each on Boston)


def error_profile(
    x_cal: np.ndarray, y_cal: np.ndarray, pred_cal: np.ndarray, band_params: dict[str, Any]
) -> dict[str, Any]:
    """What the label-free estimate needs, from the calibration rows (JSON-ready).

    `scale`: the hinge model of |residual| against rooms (fit_scale) fitted on the calibration
    rows' absolute residuals, so scale(rooms) is the expected absolute error at those rooms.
    `coverage_edges` / `coverage_bins`: the calibration rows cut at the quartiles of their rooms,
    and the share of each quartile's true prices inside the band (`band_params`).
    """
    x, resid = _calibration_rows(x_cal, y_cal, pred_cal)
    cuts = np.quantile(x, np.linspace(0, 1, COVERAGE_BINS + 1)[1:-1])
    edges = [float(v) for v in np.unique(cuts)]
    bounds = band(x, np.asarray(pred_cal, "float64").reshape(-1), band_params)
    assert bounds is not None
    y = np.asarray(y_cal, "float64").reshape(-1)
    inside = (y >= bounds[0]) & (y <= bounds[1])
    which = np.searchsorted(edges, x, side="right")
    rows = [int((which == i).sum()) for i in range(len(edges) + 1)]
    shares = [float(inside[which == i].mean()) if n else None for i, n in enumerate(rows)]
    return {
        "method": ESTIMATE_METHOD,
        "rows": len(x),
        "mae": float(np.mean(np.abs(resid))),
        "scale": fit_scale(x, resid),
        "coverage_edges": edges,
        "coverage_bins": shares,
        "coverage_rows": rows,
    }


def expected_abs_error(rooms: np.ndarray, profile: dict[str, Any]) -> np.ndarray:
    """Each row's expected absolute error ($K) at its rooms, from `profile` (float64)."""
    return scale(rooms, profile)


def estimate(rooms: np.ndarray, profile: dict[str, Any]) -> tuple[float, float | None] | None:
    """(estimated MAE, estimated band coverage) of rows with these rooms; None for no rows.

    The MAE is the mean of the rows' expected absolute errors; the coverage weighs each rooms
    quartile's calibration coverage by the share of rows in it (None without a band).
    """
    x = np.asarray(rooms, "float64").reshape(-1)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return None
    mae = float(np.mean(expected_abs_error(x, profile)))
    shares = profile.get("coverage_bins") or []
    if not shares or any(s is None for s in shares):
        return mae, None
    which = np.searchsorted(profile["coverage_edges"], x, side="right")
    covered = float(np.mean(np.asarray(shares, "float64")[which]))
    return mae, covered
