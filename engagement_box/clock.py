"""The pipeline's one clock: the time of now as naive UTC, which every stored timestamp of its
own uses (a file's ingest, a quarantine row, a version's publish, a fit, an expiry, an erasure
request). The host's local time mixed in made a version look published hours before its files
were taken in on a host outside UTC (a review of time zones)."""

from datetime import UTC, date, datetime


def utc_now() -> datetime:
    """Now, in UTC, without a time zone (DuckDB's TIMESTAMP, Spark's TIMESTAMP_NTZ)."""
    return datetime.now(UTC).replace(tzinfo=None)


def shop_zone() -> str:
    """The shop's time zone (ENGAGEMENT_TIME_ZONE, default UTC): its calendar makes the days."""
    from engagement_box import settings

    return settings.value("ENGAGEMENT_TIME_ZONE")


def in_zone(moment: datetime, zone: str) -> datetime:
    """A naive UTC moment as the wall-clock time of `zone`, naive."""
    from zoneinfo import ZoneInfo

    return moment.replace(tzinfo=UTC).astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def shop_now() -> datetime:
    """Now, as the shop's wall-clock time (naive): what a staged timestamp is compared with."""
    return in_zone(utc_now(), shop_zone())


def shop_today() -> date:
    """The run's day in the shop's calendar: the as-of never passes it."""
    return shop_now().date()
