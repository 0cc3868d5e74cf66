"""Run statistics gathered batch by batch: counts, sums, a sample, column typing (mergeable, pure).

Everything here merges exactly, so batches, files and Dask partitions combine in any grouping
into the same totals, and no row is kept in memory beyond a bounded sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from batch.core.features import REASONS
from batch.core.number_text import as_int64, has_point, looks_numeric

SAMPLE_SIZE = 20_000  # rows kept (uniformly at random) for quantiles and the fit plot
FIRST_REJECTS = 20  # rejected rows listed in report.html (all of them are in rejects.csv)


@dataclass
class Sample:
    """A uniform random sample of at most k rows: the k smallest random keys (mergeable exactly)."""

    k: int = SAMPLE_SIZE
    keys: np.ndarray = field(default_factory=lambda: np.empty(0))
    cols: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, keys: np.ndarray, **cols: np.ndarray) -> None:
        """Offer rows (one key each, see rules.sample_keys); keeps the k with the smallest keys."""
        if len(self.keys) >= self.k:
            keep = keys < self.keys.max()
            keys = keys[keep]
            cols = {n: c[keep] for n, c in cols.items()}
        if not len(keys):
            return
        self.keys = np.concatenate([self.keys, keys])
        self.cols = {n: np.concatenate([self.cols.get(n, np.empty(0)), c]) for n, c in cols.items()}
        if len(self.keys) > self.k:
            idx = np.argpartition(self.keys, self.k - 1)[: self.k]
            self.keys = self.keys[idx]
            self.cols = {n: c[idx] for n, c in self.cols.items()}

    def merge(self, other: Sample) -> None:
        if len(other.keys):
            self.add(other.keys, **other.cols)


@dataclass
class RunStats:
    """Counts, sums and a sample: enough for the report without keeping rows in memory."""

    rejects: dict[str, int] = field(default_factory=lambda: {r: 0 for r in REASONS})
    scored: int = 0
    out_of_range: int = 0
    below_range: int = 0
    above_range: int = 0
    pred_sum: float = 0.0
    pred_min: float = math.inf
    pred_max: float = -math.inf
    rooms_sum: float = 0.0
    rooms_sq: float = 0.0
    rooms_min: float = math.inf
    rooms_max: float = -math.inf
    actual_n: int = 0
    sq_err: float = 0.0
    abs_err: float = 0.0
    band_rows: int = 0  # rows with a true price and a band
    band_covered: int = 0  # of those, rows whose true price lies inside the band
    rooms_whole: int = 0  # scored rows whose rooms is a whole number (averages rarely are)
    rejected_numbers: int = 0  # rejected rows whose rooms is still a finite number
    rejected_min: float = math.inf
    rejected_max: float = -math.inf
    sample: Sample = field(default_factory=Sample)
    rejected_sample: Sample = field(default_factory=Sample)  # of those numbers, for their p50
    first_rejects: list[dict[str, Any]] = field(default_factory=list)  # shown in report.html

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())

    def merge(self, o: RunStats) -> None:
        for r, n in o.rejects.items():
            self.rejects[r] = self.rejects.get(r, 0) + n
        for name in (
            "scored",
            "out_of_range",
            "below_range",
            "above_range",
            "pred_sum",
            "rooms_sum",
            "rooms_sq",
            "actual_n",
            "sq_err",
            "abs_err",
            "band_rows",
            "band_covered",
            "rooms_whole",
            "rejected_numbers",
        ):
            setattr(self, name, getattr(self, name) + getattr(o, name))
        self.pred_min, self.pred_max = (
            min(self.pred_min, o.pred_min),
            max(self.pred_max, o.pred_max),
        )
        self.rooms_min = min(self.rooms_min, o.rooms_min)
        self.rooms_max = max(self.rooms_max, o.rooms_max)
        self.rejected_min = min(self.rejected_min, o.rejected_min)
        self.rejected_max = max(self.rejected_max, o.rejected_max)
        self.sample.merge(o.sample)
        self.rejected_sample.merge(o.rejected_sample)
        self.first_rejects = (self.first_rejects + o.first_rejects)[:FIRST_REJECTS]


@dataclass
class FileStats:
    """One input file's line in the report."""

    path: str
    sha256: str
    format: str
    rows_read: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    rooms_column: str | None = None
    target_column: str | None = None
    notes: list[str] = field(default_factory=list)
    rejects: dict[str, int] = field(default_factory=lambda: {r: 0 for r in REASONS})
    with_target: int = 0  # scored rows with a true price (lineage's data-quality metrics)

    def add(self, rows_read: int, stats: RunStats) -> None:
        self.rows_read += rows_read
        self.rows_scored += stats.scored
        self.rows_rejected += stats.rejected
        for reason, n in stats.rejects.items():
            self.rejects[reason] = self.rejects.get(reason, 0) + n
        self.with_target += stats.actual_n


@dataclass
class NumericColumns:
    """Which text input columns look like plain numbers in the batches observed (typical of CSV).

    The plan observes the first block of every file (see plan.decide_numbers); a column that
    looks numeric wherever it appears, with at least one value, is written as a number: int64
    when every value is a whole number an int64 holds (as_int64), else float64 (as_float64).
    """

    candidates: set[str] = field(default_factory=set)  # text columns from CSV (Parquet text stays)
    seen: set[str] = field(default_factory=set)  # candidates with at least one non-null value
    fractional: set[str] = field(default_factory=set)  # candidates with a value not an int64

    def observe(self, batch: pa.RecordBatch) -> None:
        """Look at the candidates this batch has (a column it lacks is no evidence either way)."""
        for name in list(self.candidates & set(batch.schema.names)):
            col = batch.column(name)
            if col.null_count == len(col):
                continue
            # (A point rules out a whole number at once: Arrow's integer parser took 50 times
            # as long to refuse a column of decimals as to read one of integers.)
            whole = name not in self.fractional and not has_point(col)
            if whole and as_int64(col) is not None:
                self.seen.add(name)
            elif looks_numeric(col):
                self.seen.add(name)
                self.fractional.add(name)
            else:
                self.candidates.discard(name)

    def merge(self, other: NumericColumns) -> None:
        self.candidates &= other.candidates
        self.seen |= other.seen
        self.fractional |= other.fractional

    @property
    def columns(self) -> list[str]:
        """The columns to store as numbers (int64 or float64)."""
        return sorted(self.candidates & self.seen)

    @property
    def integers(self) -> list[str]:
        """Of those, the columns to store as int64."""
        return sorted((self.candidates & self.seen) - self.fractional)
