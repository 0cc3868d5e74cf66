"""Is a run comparable with the others? The one rule every page, table and metric uses.

A run is **comparable** when nothing says its numbers measure something else than the training
data's:

- its true prices (when it had any) are in the training unit, $K (batch.core.units): a feed in
  dollars, $100K or log prices gives an MSE in another unit, so it is not comparable; a run
  with too few true prices to say, or none at all, is not held against;
- its rooms do not differ markedly from the training data's (batch.core.drift): the model
  extrapolates there, so its errors and coverage say little about the model on its own data.

Every warning of a run carries a kind: `units` and `drift` make the run not comparable;
`target` (a true-price column asked for and not found) does not.

Pure: the report's verdicts in, a verdict out. `report.json` stores it (`comparable`,
`comparability`), each `runs.jsonl` line copies it, and `jobs.runs`, `index.html` and the
Prometheus file show it; the quality trend lines and gauges take comparable runs only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

UNITS = "units"
DRIFT = "drift"
TARGET = "target"
KINDS = (UNITS, DRIFT, TARGET)  # every kind of warning, in the order they are shown
BREAKING = (UNITS, DRIFT)  # the kinds that make a run not comparable


@dataclass(frozen=True)
class Flag:
    """One warning of a run, with its kind."""

    kind: str
    message: str


@dataclass(frozen=True)
class Verdict:
    comparable: bool
    reasons: tuple[str, ...]  # the breaking kinds found, in KINDS order
    warnings: tuple[Flag, ...]

    def counts(self) -> dict[str, int]:
        """Warnings per kind, every kind present (0 when none)."""
        found = Counter(f.kind for f in self.warnings)
        return {kind: found.get(kind, 0) for kind in KINDS}


def judge(*, in_training_units: bool | None, drifted: bool, warnings: list[Flag]) -> Verdict:
    """The run's verdict: `in_training_units` is the unit detector's (None: could not say),
    `drifted` the drift verdict (differs markedly)."""
    reasons = []
    if in_training_units is False:
        reasons.append(UNITS)
    if drifted:
        reasons.append(DRIFT)
    return Verdict(not reasons, tuple(reasons), tuple(warnings))


def in_words(comparable: bool | None, reasons: list[str] | tuple[str, ...] = ()) -> str:
    """How a table shows the verdict: yes, `no (units, drift)`, or - when unknown."""
    if comparable is None:
        return "-"
    if comparable:
        return "yes"
    return "no" + (f" ({', '.join(reasons)})" if reasons else "")
