"""The run report: report.json (a RunReport, machine-readable) and report.html (self-contained,
for analysts).

- `build`: the typed report from the run's statistics and the model's metadata (`build.py`);
  `budget_failure` / `drift_failure` say why a refused run failed.
- `checks`: drift, rejected rooms that are numbers, the unit of the true prices.
- `render` / `write`: the plots and the page, then every file into the run's folder (`render.py`).
- `phases`: seconds per phase of a run, for `phases_seconds`.
- `challenger`: the section of a version scored in the run's shadow (--challenger).
"""

from __future__ import annotations

from batch.ops.report.build import budget_failure, build, drift_failure, drift_summary
from batch.ops.report.challenger import section as challenger
from batch.ops.report.render import render, write

__all__ = [
    "budget_failure",
    "build",
    "challenger",
    "drift_failure",
    "drift_summary",
    "render",
    "write",
]
