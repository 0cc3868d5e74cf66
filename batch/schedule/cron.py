"""Cron expressions as APScheduler 3 triggers, with cron's own meaning.

Cron numbers weekdays from Sunday and fires when either a restricted day-of-month or a restricted
day-of-week matches; APScheduler does neither, so both are translated here. A daily time in the
hour that a DST change repeats fires once (OncePerWallClock).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

from batch.core.errors import ConfigError

DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]  # cron: 0 (or 7) = Sunday


def cron_weekdays(field: str) -> str:
    """A cron day-of-week field (0/7 = Sunday, names, ranges, steps) as APScheduler day names.

    APScheduler 3 numbers weekdays from Monday = 0, so numbers must not be passed through.
    """
    days: set[int] = set()
    for part in field.lower().split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            lo, hi = 0, 6
        else:
            ends = [_day_number(x) for x in base.split("-", 1)]
            lo, hi = (ends[0], ends[0] if not step_text else 6) if len(ends) == 1 else ends
            if lo > hi and hi == 0:
                hi = 7  # "5-7" or "fri-sun" written with 0
        if step < 1 or lo > hi:
            raise ValueError(f"bad day-of-week {part!r}")
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(DAY_NAMES[d] for d in sorted(days))


def _day_number(text: str) -> int:
    if text in DAY_NAMES:
        return DAY_NAMES.index(text)
    number = int(text)  # ValueError for anything else
    if not 0 <= number <= 7:
        raise ValueError(f"day-of-week {number} is not 0-7")
    return number


# APScheduler 3 ships no type information, so mypy sees BaseTrigger as Any; add_job accepts only
# BaseTrigger instances, so the subclass is needed all the same.
class OncePerWallClock(BaseTrigger):  # type: ignore[misc]
    """A cron trigger that fires at most once per local wall-clock time across DST changes.

    When clocks go back, an hour of local times happens twice; APScheduler's CronTrigger fires
    a daily 02:30 at both (and, asked again from inside the repeated hour, returns a time before
    the one it was asked for). This wrapper skips the second occurrence, so a daily schedule
    fires once on that day. When clocks go forward, a time in the skipped hour fires at the
    same distance after the change (02:30 at 03:30), once, as CronTrigger does.
    """

    def __init__(self, inner: BaseTrigger, timezone: str) -> None:
        self.inner = inner
        self.timezone = ZoneInfo(timezone)

    def get_next_fire_time(
        self, previous_fire_time: dt.datetime | None, now: dt.datetime
    ) -> dt.datetime | None:
        prev, start = previous_fire_time, now
        for _ in range(48):  # each round leaves one repeated hour behind
            fire: dt.datetime | None = self.inner.get_next_fire_time(prev, start)
            if fire is None:
                return None
            # Asked from inside a repeated hour, CronTrigger can answer a time at or before the
            # one it was asked from; that answer is never right.
            backwards = fire <= prev if prev is not None else fire < start
            shift = repeat_shift(fire, self.timezone)
            if shift is None and not backwards:
                return fire
            prev, start = None, max(fire, start) + (shift or dt.timedelta(minutes=1))
        return None

    def __str__(self) -> str:
        return f"once per wall-clock time ({self.inner})"


def repeat_shift(moment: dt.datetime, timezone: ZoneInfo) -> dt.timedelta | None:
    """How much later clocks show the same time again, when `moment` is the second occurrence
    of a local time repeated by a DST change (clocks going back); None otherwise."""
    local = moment.astimezone(timezone)
    wall = local.replace(tzinfo=None)
    first = wall.replace(tzinfo=timezone, fold=0)
    second = wall.replace(tzinfo=timezone, fold=1)
    offset_first, offset_second = first.utcoffset(), second.utcoffset()
    if offset_first is None or offset_second is None:
        return None  # not reached: a ZoneInfo always has an offset
    if offset_first == offset_second or local.utcoffset() != offset_second:
        return None
    return offset_first - offset_second


def trigger(expression: str, timezone: str, now: dt.datetime | None = None) -> OncePerWallClock:
    """A trigger with cron's meaning: 5 standard fields (or 6, seconds first); ConfigError if bad.

    As in cron, when both day-of-month and day-of-week are restricted, either one matching fires.
    An expression that can never fire (30 February) is refused too, and a daily time in the hour
    that a DST change repeats fires once (see OncePerWallClock).
    """
    cron = _cron_trigger(expression, timezone)
    if cron.get_next_fire_time(None, now or dt.datetime.now(dt.UTC)) is None:
        raise ConfigError(
            f"the cron expression {expression!r} (--schedule / BATCH_SCHEDULE) "
            "never fires (no such date, e.g. 30 February); choose days that exist"
        )
    return cron


def _cron_trigger(expression: str, timezone: str) -> OncePerWallClock:
    """The trigger of trigger(), without the check that it ever fires."""
    from apscheduler.triggers.combining import OrTrigger
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    names = ["minute", "hour", "day", "month", "day_of_week"]
    if len(fields) == 6:
        names = ["second"] + names
    elif len(fields) != 5:
        raise ConfigError(
            f"invalid cron expression {expression!r} (--schedule / BATCH_SCHEDULE): "
            f"expected 5 fields (minute hour day month weekday), got {len(fields)}"
        )
    values = dict(zip(names, fields))
    try:
        values["day_of_week"] = cron_weekdays(values["day_of_week"])
        if "second" not in values:
            values["second"] = "0"
        if fields[-3] != "*" and fields[-1] != "*":
            by_day = dict(values, day_of_week="*")
            by_weekday = dict(values, day="*")
            return OncePerWallClock(
                OrTrigger(
                    [
                        CronTrigger(timezone=timezone, **by_day),
                        CronTrigger(timezone=timezone, **by_weekday),
                    ]
                ),
                timezone,
            )
        return OncePerWallClock(CronTrigger(timezone=timezone, **values), timezone)
    except (ValueError, TypeError, LookupError) as exc:
        raise ConfigError(
            f"invalid cron expression {expression!r} (--schedule / BATCH_SCHEDULE): {exc}"
        ) from None


def missed_fire(
    cron: OncePerWallClock, since: dt.datetime | None, now: dt.datetime
) -> dt.datetime | None:
    """The first scheduled time after `since` if it has passed (None: nothing was missed)."""
    if since is None:
        return now  # never ran: run now
    nxt = cron.get_next_fire_time(None, since + dt.timedelta(seconds=1))
    return nxt if nxt is not None and nxt <= now else None


# Where the shortest gap between fires is looked for: from now and from the first day of each of
# the next 48 months (a leap day included), SAMPLED_FIRES consecutive fires each.
SAMPLED_MONTHS = 48
SAMPLED_FIRES = 20


def shortest_gap(cron: OncePerWallClock, now: dt.datetime) -> dt.timedelta | None:
    """The shortest time between two consecutive fires found (None: it fires at most once)."""
    starts = [now]
    year, month = now.year, now.month
    for _ in range(SAMPLED_MONTHS):
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        starts.append(dt.datetime(year, month, 1, tzinfo=dt.UTC))
    best: dt.timedelta | None = None
    for start in starts:
        fire = cron.get_next_fire_time(None, start)
        for _ in range(SAMPLED_FIRES):
            if fire is None:
                break
            nxt = cron.get_next_fire_time(fire, fire + dt.timedelta(seconds=1))
            if nxt is not None and (best is None or nxt - fire < best):
                best = nxt - fire
            fire = nxt
    return best


def check_interval(
    expression: str, cron: OncePerWallClock, min_seconds: float, now: dt.datetime | None = None
) -> None:
    """ConfigError (exit 2) when the schedule fires more often than every `min_seconds`."""
    gap = shortest_gap(cron, now or dt.datetime.now(dt.UTC))
    if gap is not None and gap.total_seconds() < min_seconds:
        raise ConfigError(
            f"the cron expression {expression!r} (--schedule / BATCH_SCHEDULE) fires every "
            f"{gap.total_seconds():g} s, more often than the minimum of {min_seconds:g} s "
            "(--min-schedule-interval-s / BATCH_MIN_SCHEDULE_INTERVAL_S); choose a slower "
            "schedule or lower the minimum"
        )


def latest_fire(
    cron: OncePerWallClock, now: dt.datetime, within: dt.timedelta
) -> dt.datetime | None:
    """The last scheduled time at or before `now`, at most `within` before it (None: none).

    A fire runs moments after its scheduled time, so the search widens from a minute (a few
    steps even for a per-second schedule) only when nothing is found there.
    """
    for window in (dt.timedelta(minutes=1), dt.timedelta(hours=1), dt.timedelta(days=1), within):
        window = min(window, within)
        last = None
        nxt = cron.get_next_fire_time(None, now - window)
        while nxt is not None and nxt <= now:
            last = nxt
            nxt = cron.get_next_fire_time(None, nxt + dt.timedelta(seconds=1))
        if last is not None:
            return last
    return None
