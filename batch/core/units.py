"""One unit detector for true prices (the target column, and labels joined later).

The model predicts a suburb's median price in thousands of dollars ($K), at the 1970s scale of
its training data. A feed's true prices are compared with the predictions for the same rows:
the median of `true / predicted` (the ratio) says how many times bigger the feed's numbers are.

The rules, in the order they are tried (documented in the model guide):

- **log dollars / log $K**: the values are small (all below 16) and hardly spread (their standard
  deviation under a fifth of the predictions' and of their own mean), and raising e or 10 to
  them gives prices whose ratio to the predictions lies in the $K band. The transform that
  lands nearest a ratio of 1 names the unit (`exp`, `10^`; then /1000 for dollars).
- **$K** (accepted): ratio from 0.5 to 50 -- the training scale up to a modern market's
  (prices rose about thirtyfold since the 1970s), and a cheap batch down to half.
- **dollars**: ratio from 250 to 100,000 -- 1970s dollars (about 1,000 times) up to a modern
  market's dollars; divide by 1,000.
- **$100K**: ratio from 0.002 to 0.5 -- hundreds of thousands of dollars, 1970s or modern;
  multiply by 100.
- **unknown**: anything else (between the bands, or not positive).

Fewer than MIN_ROWS usable rows (both numbers finite and positive) decide nothing.
Pure: arrays in, a verdict out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_ROWS = 5
# The log rules need enough rows for a standard deviation to mean something.
MIN_ROWS_FOR_SPREAD = 10
K_BAND = (0.5, 50.0)
DOLLARS_BAND = (250.0, 100_000.0)
HUNDRED_K_BAND = (0.002, 0.5)
LOG_MAX_VALUE = 16.0  # e^16 dollars is 8.9 billion: no price's logarithm is bigger
LOG_MAX_SPREAD = 0.2  # std(true) / std(predicted), and std(true) / mean(true), below this


@dataclass(frozen=True)
class Unit:
    """What a column of true prices is most likely measured in."""

    name: str  # "$K", "dollars", "$100K", "log dollars", "log $K", "unknown"
    ratio: float | None  # median(true / predicted) over the usable rows; None: too few rows
    rows: int  # usable rows the verdict rests on
    convert: str  # what to do to reach $K ("" when the unit is $K or nothing could be said)

    @property
    def decided(self) -> bool:
        return self.ratio is not None

    @property
    def is_training_unit(self) -> bool | None:
        """True for $K, False for anything else, None when too few rows to say."""
        return None if not self.decided else self.name == "$K"

    def warning(self, column: str) -> str | None:
        """The plain-words warning for a column in another unit (None when $K or undecided)."""
        if not self.decided or self.name == "$K":
            return None
        assert self.ratio is not None
        if self.name == "unknown":
            what = "a unit the detector does not know"
            todo = "find the column's unit and convert it to thousands of dollars ($K)"
        else:
            what = f"{self.name} rather than $K (thousands of dollars)"
            todo = self.convert
        return (
            f"The true prices in {column!r} are about {self.ratio:.3g} times the predictions: "
            f"they look like {what}. MSE and MAE compare different units and are not "
            f"comparable; {todo}."
        )


def _within(value: float, band: tuple[float, float]) -> bool:
    return band[0] <= value <= band[1]


def _log_unit(true: np.ndarray, pred: np.ndarray) -> Unit | None:
    """The log unit that fits best, or None when the values do not look like logarithms."""
    if len(true) < MIN_ROWS_FOR_SPREAD or float(np.max(true)) >= LOG_MAX_VALUE:
        return None
    spread = float(np.std(true)) / max(float(np.std(pred)), 1e-9)
    variation = float(np.std(true)) / float(np.mean(true))
    if spread >= LOG_MAX_SPREAD or variation >= LOG_MAX_SPREAD:
        return None
    candidates = [
        (
            "log dollars",
            np.exp(true) / 1000,
            "take e to the power of each value, then divide by 1,000",
        ),
        (
            "log dollars",
            10.0**true / 1000,
            "take 10 to the power of each value, then divide by 1,000",
        ),
        ("log $K", np.exp(true), "take e to the power of each value"),
        ("log $K", 10.0**true, "take 10 to the power of each value"),
    ]
    best: Unit | None = None
    best_distance = math.inf
    for name, prices, convert in candidates:
        ratio = float(np.median(prices / pred))
        if not _within(ratio, K_BAND):
            continue
        distance = abs(math.log(ratio))
        if distance < best_distance:
            best_distance = distance
            raw = float(np.median(true / pred))
            best = Unit(name, raw, len(true), f"convert the column to $K: {convert}")
    return best


def detect(true: np.ndarray, predicted: np.ndarray) -> Unit:
    """The most likely unit of `true` prices, given the model's $K predictions for the same rows."""
    true = np.asarray(true, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    ok = np.isfinite(true) & np.isfinite(predicted) & (true > 0) & (predicted > 0)
    t, p = true[ok], predicted[ok]
    if len(t) < MIN_ROWS:
        return Unit("unknown", None, int(len(t)), "")
    logged = _log_unit(t, p)
    if logged is not None:
        return logged
    ratio = float(np.median(t / p))
    if _within(ratio, K_BAND):
        return Unit("$K", ratio, len(t), "")
    if _within(ratio, DOLLARS_BAND):
        return Unit("dollars", ratio, len(t), "convert the column to $K: divide it by 1,000")
    if _within(ratio, HUNDRED_K_BAND):
        return Unit("$100K", ratio, len(t), "convert the column to $K: multiply it by 100")
    return Unit("unknown", ratio, len(t), "")
