"""As-of partitions: one partition per calendar month; a partition's as-of date is its last day.

Materializing a past month rebuilds every value and engagement table as of that month's end and
publishes it as a version (backfills from the UI build history). The current month is included
(`end_offset=1`), and an as-of date never goes past the last completed order. ENGAGEMENT_AS_OF,
when set, pins the as-of date for every run instead (reproductions, tests).
"""

import calendar
import contextlib
import datetime as dt
import re

import dagster as dg

from engagement_box import settings

# The partitions are part of the code location's structure, so this one setting is read when the
# definitions load (restart `dagster dev` after changing it).
# A value that is not a date fails the code location's load with the variable named (Dagster
# showed only strptime's "time data '2023-13-01' does not match format").
HISTORY_START: str = str(settings.value("ENGAGEMENT_HISTORY_START") or "2023-07-01")


def _zone_at_load() -> str:
    """The shop's time zone for the partitions' and schedules' calendar (the current month, the
    hour a tick runs at); UTC when the setting does not parse (a run's first resource then
    refuses it, naming it, instead of the code location failing to load)."""
    try:
        return str(settings.value("ENGAGEMENT_TIME_ZONE"))
    except ValueError:
        return "UTC"


SHOP_ZONE = _zone_at_load()
monthly_as_of = dg.MonthlyPartitionsDefinition(
    start_date=HISTORY_START, end_offset=1, timezone=SHOP_ZONE
)


def month_end(partition_key: str) -> dt.date:
    start = dt.date.fromisoformat(partition_key)
    return start.replace(day=calendar.monthrange(start.year, start.month)[1])


def partition_key_for(moment: dt.date | dt.datetime) -> str:
    """The as-of month partition that a day (a schedule tick, a run date) falls in."""
    return moment.replace(day=1).strftime("%Y-%m-%d")


def month_of_day_before(day: dt.date | dt.datetime) -> str:
    """The as-of month a scheduled or sensed run takes on `day`: the month of the day before,
    the last whole day the night's exports hold. It differs from `day`'s own month on the 1st
    only: the run of 1 July completes June, whose version then holds 30 June (running July
    there gave a "July" version as of 30 June and left June's stopped at the 29th). On the
    first day of the history there is no month before: that day's own month."""
    before = partition_key_for(day - dt.timedelta(days=1))
    return max(before, partition_key_for(dt.date.fromisoformat(HISTORY_START)))


class MonthOutOfRange(ValueError):
    """A month the as-of partitions do not cover (or that is not a month at all)."""


def partition_key_for_month(month: str) -> str:
    """The partition key of a month written YYYY-MM, or a plain MonthOutOfRange error naming
    the valid range and the setting that moves its start."""
    written = month.strip()
    start = None
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}", written):  # "%m" alone took "2025-1" for January
        with contextlib.suppress(ValueError):  # "2025-13"
            start = dt.datetime.strptime(written, "%Y-%m").date()
    if start is None:
        raise MonthOutOfRange(
            f"month {month!r} is not a month: write it as YYYY-MM (a four-digit year and a "
            "two-digit month, e.g. 2025-01)"
        )
    key = partition_key_for(start)
    keys = monthly_as_of.get_partition_keys()
    if key not in keys:
        first, last = (keys[0][:7], keys[-1][:7]) if keys else (HISTORY_START[:7], "none")
        raise MonthOutOfRange(
            f"month {month} is outside the as-of months this pipeline runs: {first} to {last}. "
            f"To run an earlier month, set ENGAGEMENT_HISTORY_START (now {HISTORY_START}) to its "
            "first day or before; months after the current one cannot run yet."
        )
    return key


def current_partition_key() -> str:
    key = monthly_as_of.get_last_partition_key()
    if key is None:
        raise MonthOutOfRange(
            f"ENGAGEMENT_HISTORY_START={HISTORY_START} is after the current month: no as-of "
            "month can run yet; set it to the first month of your data"
        )
    return key
