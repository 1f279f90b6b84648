"""What each engagement source staged up to an as-of, and what a run says of it.

CRV is computed from the referrals export, CIV from the social events, CKV from the reviews. A
source that staged no row gives every customer 0 of its metric: nothing was measured, which is
not a measured zero. A source whose newest row is long before the as-of (its tool cancelled,
its export broken) still counts every row it holds: reactions and reviews of long ago keep
crediting CIV and CKV, and the referral model keeps its rate. Neither stops a run: the
engagement step's check `engagement_sources_are_current` says which (a warning; docs/OPERATIONS.md,
"An engagement source that is missing or has ended"), and its metadata lists every source's
rows and newest day. A partial review, 2026-12-07: a social export cancelled 18 months before
left its customers first by CEV, and only orders have a freshness check.
"""

import datetime as dt
from dataclasses import dataclass

import duckdb

from engagement_box.sql import load_sql

# source -> (the metric it feeds, what a customer does in it)
FEEDS: dict[str, tuple[str, str]] = {
    "referrals": ("CRV", "referred anyone"),
    "social": ("CIV", "influenced anyone"),
    "reviews": ("CKV", "wrote a review"),
}
HELP = 'docs/OPERATIONS.md, "An engagement source that is missing or has ended"'


@dataclass(frozen=True)
class Coverage:
    source: str
    rows: int  # staged up to the end of the as-of day
    newest: dt.date | None  # the newest of them, by its own date (referred, occurred, written)

    def days_before(self, as_of: dt.date) -> int | None:
        return None if self.newest is None else (as_of - self.newest).days

    def problem(self, as_of: dt.date, stale_days: int) -> str | None:
        """A sentence on a source that staged nothing, or nothing in the last `stale_days` days
        before `as_of`; None when it is current."""
        metric, act = FEEDS[self.source]
        if self.rows == 0:
            return (
                f"{self.source}: no row staged up to {as_of}, so every customer's {metric} is 0 "
                f"because nothing was measured, not because no one {act}"
            )
        days = self.days_before(as_of)
        if days is not None and days > stale_days:
            return (
                f"{self.source}: its newest row is dated {self.newest}, {days} days before the "
                f"as-of {as_of} (ENGAGEMENT_STALE_SOURCE_DAYS is {stale_days}): {metric} still "
                f"counts its {self.rows:,} rows as if the export were current"
            )
        return None

    def report(self, as_of: dt.date) -> dict[str, object]:
        return {
            "feeds": FEEDS[self.source][0],
            "rows": self.rows,
            "newest": None if self.newest is None else self.newest.isoformat(),
            "days_before_as_of": self.days_before(as_of),
        }


def coverage(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> list[Coverage]:
    """Each engagement source's staged rows up to the end of `as_of` (shop time, as the
    engagement step reads them), in `FEEDS`' order."""
    return from_rows(
        con.execute(
            load_sql("intermediate/engagement_source_coverage"), {"until": until_of(as_of)}
        ).fetchall()
    )


def until_of(as_of: dt.date) -> dt.datetime:
    """The end of the as-of day, the bound `intermediate/engagement_source_coverage` takes."""
    return dt.datetime.combine(as_of, dt.time.max)


def from_rows(rows) -> list[Coverage]:
    """The (source, staged_rows, newest) rows of `intermediate/engagement_source_coverage`, on
    either engine, as `Coverage`s in `FEEDS`' order."""
    found = {
        source: Coverage(source, int(count), newest.date() if newest is not None else None)
        for source, count, newest in rows
    }
    return [found[source] for source in FEEDS]
