"""As-of partitions: one partition per calendar month; a partition's as-of date is its last day.

Materializing a past month rebuilds every value and engagement table as of that month's end and
publishes it as a version (backfills from the UI build history). The current month is included
(`end_offset=1`), and an as-of date never goes past the last completed order. ENGAGEMENT_AS_OF,
when set, pins the as-of date for every run instead (reproductions, tests).
"""

import calendar
import datetime as dt

import dagster as dg

from engagement_box import settings

# The partitions are part of the code location's structure, so this one setting is read when the
# definitions load (restart `dagster dev` after changing it).
HISTORY_START: str = settings.raw("ENGAGEMENT_HISTORY_START") or "2023-07-01"

monthly_as_of = dg.MonthlyPartitionsDefinition(start_date=HISTORY_START, end_offset=1)


def month_end(partition_key: str) -> dt.date:
    start = dt.date.fromisoformat(partition_key)
    return start.replace(day=calendar.monthrange(start.year, start.month)[1])


def partition_key_for(moment: dt.date | dt.datetime) -> str:
    """The as-of month partition that a day (a schedule tick, a run date) falls in."""
    return moment.replace(day=1).strftime("%Y-%m-%d")


def current_partition_key() -> str:
    key = monthly_as_of.get_last_partition_key()
    if key is None:
        raise ValueError(f"no as-of partitions: ENGAGEMENT_HISTORY_START={HISTORY_START} is ahead")
    return key
