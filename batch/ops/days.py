"""A run's logical date: its `{date}` inputs filled, and what earlier runs scored the same day.

`--backfill` runs one ordinary run per day (batch.backfill); under the output lock each run
asks here whether its day is done already (then it is skipped) or, with --force, which earlier
runs it re-scores (they stay, marked superseded by it).
"""

from __future__ import annotations

from typing import Any, Literal

from batch.core import dates
from batch.core.errors import ConfigError
from batch.ops.history import days_done
from batch.settings import Settings, env_name

# What a run does about earlier runs of its logical date: None (an ordinary run: nothing),
# "skip" (a backfill: a day already done is not scored again), "replace" (--force: it is, and
# the earlier runs are marked superseded by the new one).
DayRule = Literal["skip", "replace"] | None
ALREADY_SCORED = "already_scored"


def for_day(settings: Settings) -> Settings:
    """The settings with `{date}` in --input filled with the logical date (ConfigError, exit 2,
    when the input names {date} and no logical date is given)."""
    if not dates.has_placeholder(settings.input):
        return settings
    if settings.logical_date is None:
        raise ConfigError(
            f"--input / {env_name('input')} names {dates.PLACEHOLDER} but no day fills it: give "
            f"--logical-date YYYY-MM-DD for one run or --backfill FROM..TO for a range"
        )
    return settings.model_copy(update={"input": dates.fill(settings.input, settings.logical_date)})


def earlier_runs(settings: Settings, rule: DayRule) -> list[str]:
    """The published runs of this run's logical date (none without a rule or a date)."""
    if rule is None or settings.logical_date is None:
        return []
    return days_done(settings.output_dir).get(settings.logical_date, [])


def already_scored(settings: Settings, runs: list[str]) -> dict[str, Any]:
    """The summary of a backfill day skipped because a published run scored it."""
    return {
        "status": ALREADY_SCORED,
        "run_id": None,
        "run_dir": None,
        "rows_scored": 0,
        "rows_rejected": 0,
        "logical_date": day_text(settings),
        "scored_by": runs,
        "warnings": [],
    }


def day_text(settings: Settings) -> str | None:
    """The logical date as YYYY-MM-DD (None: the run has none)."""
    return settings.logical_date.isoformat() if settings.logical_date else None
