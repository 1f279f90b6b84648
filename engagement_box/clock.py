"""The pipeline's one clock: the time of now as naive UTC, which every stored timestamp of its
own uses (a file's ingest, a quarantine row, a version's publish, a fit, an expiry, an erasure
request). The host's local time mixed in made a version look published hours before its files
were taken in on a host outside UTC (a review of time zones)."""

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, in UTC, without a time zone (DuckDB's TIMESTAMP, Spark's TIMESTAMP_NTZ)."""
    return datetime.now(UTC).replace(tzinfo=None)
