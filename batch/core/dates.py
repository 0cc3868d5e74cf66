"""Logical dates: the `{date}` placeholder of --input and the FROM..TO range of --backfill.

A run's logical date is the day its input stands for (YYYY-MM-DD), not the day it ran: the
scheduler gives each fire the date of its scheduled time, and a backfill gives each run one day
of its range. Pure functions, no I/O.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from batch.core.errors import ConfigError

PLACEHOLDER = "{date}"
MAX_DAYS = 3_660  # about ten years: a longer range is a typo, not a backfill
RANGE_FORMAT = "FROM..TO with dates as YYYY-MM-DD, e.g. 2026-11-01..2026-11-30"


def has_placeholder(entries: list[str]) -> bool:
    """Whether any --input entry holds `{date}`."""
    return any(PLACEHOLDER in entry for entry in entries)


def fill(entries: list[str], day: dt.date) -> list[str]:
    """The --input entries with every `{date}` replaced by the day (YYYY-MM-DD); other braces
    are left as they are."""
    return [entry.replace(PLACEHOLDER, day.isoformat()) for entry in entries]


def parse_day(text: str, what: str = "--logical-date") -> dt.date:
    """A YYYY-MM-DD date (ConfigError, exit 2, naming `what` otherwise)."""
    value = text.strip()
    try:
        if len(value) != 10:
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"invalid date {text!r} for {what}: expected YYYY-MM-DD, e.g. 2026-11-01"
        ) from None


def parse_range(text: str) -> list[dt.date]:
    """Every day of FROM..TO, both included, oldest first (ConfigError, exit 2, when the text
    is not such a range, runs backwards, or spans more than MAX_DAYS days)."""
    start_text, sep, end_text = text.partition("..")
    if not sep or not start_text.strip() or not end_text.strip():
        raise ConfigError(f"invalid --backfill {text!r}: expected {RANGE_FORMAT}")
    start = parse_day(start_text, "--backfill")
    end = parse_day(end_text, "--backfill")
    if end < start:
        raise ConfigError(
            f"invalid --backfill {text!r}: {end} is before {start}; the range runs FROM..TO, "
            "oldest first"
        )
    days = (end - start).days + 1
    if days > MAX_DAYS:
        raise ConfigError(
            f"invalid --backfill {text!r}: {days} days is more than {MAX_DAYS}; "
            "backfill a shorter range at a time"
        )
    return [start + dt.timedelta(days=i) for i in range(days)]


def day_of(moment: dt.datetime, timezone: str) -> dt.date:
    """The calendar day of a moment in the given time zone (the scheduler's logical date)."""
    return moment.astimezone(ZoneInfo(timezone)).date()


def start_of(day: dt.date, timezone: str) -> dt.datetime:
    """Midnight at the start of the day in the given time zone: a backfill run's nominal time."""
    return dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(timezone))
