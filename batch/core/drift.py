"""Drift that knows its sample size: is tonight's rooms column unlike the training data's?

Each check is a statistical test whose threshold accounts for the number of rows, plus an
effect-size floor, so a small feed is not flagged for what chance alone explains and a huge
feed is not flagged for a difference too small to matter. A check fails only when both hold:
its p-value is below ALPHA *and* its effect is past the floor.

- **mean**: Welch's z between the input's and the training data's mean rooms (normal
  approximation); effect = |gap| in training standard deviations, floor MEAN_FLOOR_SD.
- **spread**: the log of the variance ratio, whose standard error is about
  sqrt(2/(n-1) + 2/(m-1)); effect = the ratio of standard deviations, floor outside SPREAD_FLOOR.
- **outside the training range**: the count of rows beyond the training min/max against a
  binomial with p0 = 2/(m+1) (the chance a fresh draw from the training data lands outside its
  own range); effect = the share outside, floor OUTSIDE_FLOOR.
- **whole numbers**: a suburb's average is almost never a whole number; a feed with WHOLE_SHARE
  of whole numbers over at least MIN_ROWS rows is flagged (no test: the effect is the signal).

Pure: summary numbers in, checks and a verdict out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 0.001
MEAN_FLOOR_SD = 0.5
SPREAD_FLOOR = (0.5, 2.0)
OUTSIDE_FLOOR = 0.05
WHOLE_SHARE = 0.9
MIN_ROWS = 30  # fewer rows: "too few rows" when nothing is flagged; the tests still run


@dataclass(frozen=True)
class Sample:
    """The input's rooms (scored rows)."""

    n: int
    mean: float
    std: float
    outside: int  # rows outside the training range
    whole: int  # rows whose rooms are whole numbers


@dataclass(frozen=True)
class Training:
    n: int
    mean: float
    std: float


@dataclass(frozen=True)
class Check:
    name: str  # mean, spread, outside_training_range, whole_numbers
    statistic: float  # z (mean, spread), the count outside, or the share of whole numbers
    p_value: float | None  # None for a rule without a test
    effect: float
    floor: str  # the effect-size floor in words
    fails: bool


def _two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def _binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if p <= 0:
        return 0.0
    if k > 2_000:  # the normal approximation is exact enough, and the sum would be slow
        mean, sd = n * p, math.sqrt(n * p * (1 - p))
        return 0.5 * math.erfc((k - 0.5 - mean) / (sd * math.sqrt(2)))
    log_p, log_q = math.log(p), math.log1p(-p)
    below = 0.0
    for i in range(k):
        below += math.exp(
            math.lgamma(n + 1)
            - math.lgamma(i + 1)
            - math.lgamma(n - i + 1)
            + i * log_p
            + (n - i) * log_q
        )
    return max(0.0, 1.0 - below)


def mean_check(s: Sample, t: Training) -> Check:
    gap = abs(s.mean - t.mean) / t.std
    se = math.sqrt(s.std**2 / s.n + t.std**2 / t.n)
    z = (s.mean - t.mean) / se if se > 0 else (math.inf if gap else 0.0)
    p = _two_sided(z)
    return Check(
        "mean", z, p, gap, f"{MEAN_FLOOR_SD} training sd", p < ALPHA and gap > MEAN_FLOOR_SD
    )


def spread_check(s: Sample, t: Training) -> Check | None:
    if s.n < 3 or t.n < 3 or t.std <= 0:
        return None
    if s.std <= 0:
        ratio, z = 0.0, -math.inf
    else:
        ratio = s.std / t.std
        z = math.log(ratio**2) / math.sqrt(2 / (s.n - 1) + 2 / (t.n - 1))
    p = _two_sided(z)
    low, high = SPREAD_FLOOR
    return Check(
        "spread",
        z,
        p,
        ratio,
        f"sd ratio outside {low}-{high}",
        p < ALPHA and not low <= ratio <= high,
    )


def outside_check(s: Sample, t: Training) -> Check:
    p0 = 2 / (t.n + 1)
    share = s.outside / s.n
    p = _binomial_upper_tail(s.outside, s.n, p0)
    return Check(
        "outside_training_range",
        float(s.outside),
        p,
        share,
        f"{OUTSIDE_FLOOR:.0%} of rows",
        p < ALPHA and share > OUTSIDE_FLOOR,
    )


def whole_check(s: Sample) -> Check:
    share = s.whole / s.n
    return Check(
        "whole_numbers",
        share,
        None,
        share,
        f"{WHOLE_SHARE:.0%} of at least {MIN_ROWS} rows",
        s.n >= MIN_ROWS and share >= WHOLE_SHARE,
    )


def checks(s: Sample, t: Training) -> list[Check]:
    """Every check that can be made (none on an empty input or a training sd of 0)."""
    if s.n <= 0 or t.n <= 0 or not t.std > 0:
        return []
    found = [mean_check(s, t), spread_check(s, t), outside_check(s, t), whole_check(s)]
    return [c for c in found if c is not None]


def verdict(s: Sample, found: list[Check]) -> str:
    """differs_markedly, too_few_rows (nothing flagged on a small input) or no_marked_difference."""
    if any(c.fails for c in found):
        return "differs_markedly"
    return "too_few_rows" if s.n < MIN_ROWS else "no_marked_difference"


def headline(found: list[Check]) -> Check | None:
    """The check the summary line shows: the failing one with the smallest p-value, else the
    one nearest to failing (smallest p-value)."""
    if not found:
        return None
    order = sorted(found, key=lambda c: (not c.fails, c.p_value if c.p_value is not None else 1.0))
    return order[0]
