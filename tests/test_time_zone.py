"""The shop's time zone (ENGAGEMENT_TIME_ZONE): a New York shop whose exports write offsets had
18 % of its orders counted on the next day, 61 in the next month, and a referee who signed up
the evening they were referred judged a customer from before (a review of time zones): every
timestamp was read as a UTC instant and bucketed by its UTC day. Timestamps are now staged as
the shop's wall-clock time, and its calendar makes the days, the months and the run's day."""

import datetime as dt

import polars as pl
import pytest

from engagement_box import clock
from engagement_box.staging.contracts import SOURCES
from engagement_box.staging.ingestion import exports_taken_in, ingest_source, staged_zone
from engagement_box.staging.messages import other_offset_message
from engagement_box.staging.validation import parse_column
from tests.conftest import good_order, write_csv

NEW_YORK = "America/New_York"
# The run's time (naive UTC), named by every test: none reads the clock.
NOW = dt.datetime(2026, 7, 2, 12, 0)

WRITTEN = [
    "2026-06-30T23:30:00-04:00",  # an evening in New York: 1 July in UTC
    "2026-07-01T03:30:00Z",  # the same instant, written in UTC
    "2026-07-01 03:30:00 UTC",
    "2026-06-30 20:30:00.5-0700",  # Los Angeles, the same instant and a half second
    "2026-06-30 23:30:00",  # no offset: written in the shop's time
    "2026-03-08 02:30:00",  # a wall-clock time the spring-forward skips: taken as written
    "2026-06-30",
]


def test_timestamps_with_an_offset_are_staged_in_the_shops_time_zone():
    text = pl.Series("ordered_at", WRITTEN)
    in_utc, _ = parse_column(text, pl.Datetime, "UTC")
    in_new_york, _ = parse_column(text, pl.Datetime, NEW_YORK)
    evening, utc = dt.datetime(2026, 6, 30, 23, 30), dt.datetime(2026, 7, 1, 3, 30)
    assert in_utc.to_list() == [
        utc, utc, utc, utc.replace(microsecond=500_000), evening,
        dt.datetime(2026, 3, 8, 2, 30), dt.datetime(2026, 6, 30),
    ]  # fmt: skip
    assert in_new_york.to_list() == [
        evening, evening, evening, evening.replace(microsecond=500_000), evening,
        dt.datetime(2026, 3, 8, 2, 30), dt.datetime(2026, 6, 30),
    ]  # fmt: skip


def exports(tmp_path):
    folder = tmp_path / "exports"
    for name in SOURCES:
        (folder / name).mkdir(parents=True)
    rows = []
    for i, written in enumerate(WRITTEN[:4]):
        row = good_order(i)
        row["ordered_at"] = written
        rows.append(row)
    write_csv(folder / "orders" / "orders.csv", rows)
    return folder


def staged_times(con) -> list[dt.datetime]:
    return [
        r[0]
        for r in con.execute("SELECT ordered_at FROM staging.orders ORDER BY order_id").fetchall()
    ]


def test_a_new_york_shops_orders_fall_on_its_days_and_a_change_of_zone_stages_them_again(
    warehouse, tmp_path, monkeypatch
):
    folder = exports(tmp_path)
    monkeypatch.setenv("ENGAGEMENT_TIME_ZONE", NEW_YORK)
    ingest_source(warehouse, folder, "orders", now=NOW)
    evening = dt.datetime(2026, 6, 30, 23, 30)
    half = evening.replace(microsecond=500_000)
    assert staged_times(warehouse) == [evening, evening, evening, half]
    assert staged_zone(warehouse) == NEW_YORK

    # The zone changed: the files are no longer taken in as they are, and the next ingest reads
    # them again in the new calendar (no day is left in the old one).
    monkeypatch.setenv("ENGAGEMENT_TIME_ZONE", "UTC")
    assert not exports_taken_in(warehouse, folder)
    report = ingest_source(warehouse, folder, "orders", now=NOW)
    assert report.restaged_for_rules == ["orders/orders.csv"]
    utc = dt.datetime(2026, 7, 1, 3, 30)
    assert staged_times(warehouse) == [utc, utc, utc, utc.replace(microsecond=500_000)]
    assert staged_zone(warehouse) == "UTC"


def test_a_warehouse_staged_before_the_setting_was_read_in_utc(warehouse, tmp_path, monkeypatch):
    """Every release before the setting read timestamps in UTC: such a warehouse is taken to be
    in UTC, and a shop that sets its zone after the upgrade has its files taken in again."""
    folder = exports(tmp_path)
    monkeypatch.delenv("ENGAGEMENT_TIME_ZONE", raising=False)
    ingest_source(warehouse, folder, "orders", now=NOW)
    warehouse.execute("DROP TABLE staging.ingest_zone")  # as an earlier release left it
    assert staged_zone(warehouse) == "UTC"
    monkeypatch.setenv("ENGAGEMENT_TIME_ZONE", NEW_YORK)
    assert not exports_taken_in(warehouse, folder)
    report = ingest_source(warehouse, folder, "orders", now=NOW)
    assert report.restaged_for_rules == ["orders/orders.csv"]
    assert {t.replace(microsecond=0) for t in staged_times(warehouse)} == {
        dt.datetime(2026, 6, 30, 23, 30)
    }


@pytest.mark.parametrize(
    ("zone", "quarantined"),
    [("UTC", ["o1"]), ("Pacific/Kiritimati", [])],  # UTC+14: its wall clock is a day ahead
)
def test_the_future_bound_is_the_run_time_in_the_shops_zone(
    warehouse, tmp_path, monkeypatch, zone, quarantined
):
    """An export written in a zone ahead of UTC without offsets: its wall-clock times are up to
    14 hours ahead of UTC, within a day of the run's time where the shop is."""
    folder = tmp_path / "exports"
    late = {**good_order(1), "ordered_at": "2026-07-04 01:00:00"}  # 37 h after the run (UTC)
    write_csv(folder / "orders" / "orders.csv", [good_order(0), late])
    monkeypatch.setenv("ENGAGEMENT_TIME_ZONE", zone)
    ingest_source(warehouse, folder, "orders", now=NOW)
    rows = warehouse.execute(
        "SELECT json_extract_string(raw_values, '$.order_id'), detail FROM staging.quarantine"
    ).fetchall()
    assert [r[0] for r in rows] == quarantined
    if quarantined:
        assert rows[0][1].endswith("is after the run's time 2026-07-02 12:00 UTC plus 1 day")


def test_the_shops_clock_gives_its_day():
    moment = dt.datetime(2026, 7, 1, 3, 30)  # UTC
    assert clock.in_zone(moment, NEW_YORK) == dt.datetime(2026, 6, 30, 23, 30)
    assert clock.in_zone(moment, "Asia/Tokyo").date() == dt.date(2026, 7, 1)


def test_a_time_zone_that_is_none_is_refused_naming_the_setting(monkeypatch):
    from engagement_box import settings

    monkeypatch.setenv("ENGAGEMENT_TIME_ZONE", "Eastern")
    assert settings.first_problem() == (
        "ENGAGEMENT_TIME_ZONE='Eastern' is not valid: expected a time zone name such as "
        "America/New_York or UTC, got 'Eastern'"
    )


@pytest.mark.parametrize(
    ("setting", "said"),
    [(None, True), ("UTC", False), (NEW_YORK, False)],
)
def test_timestamps_at_another_offset_are_said_while_the_zone_is_left_unset(
    warehouse, tmp_path, monkeypatch, setting, said
):
    """A New York shop that never heard of the setting: its evening orders counted on the next
    day without a word. While ENGAGEMENT_TIME_ZONE is unset, a file whose first timestamps are
    written at another offset than UTC's is named, with one of them; set (to any zone, UTC
    too), nothing is said. An offset of zero is UTC's: nothing to say."""
    folder = exports(tmp_path)  # ordered_at at -04:00, Z, UTC, -0700
    utc_only = [{**good_order(9), "ordered_at": "2026-07-01T03:30:00+00:00"}]
    write_csv(folder / "orders" / "orders_utc.csv", utc_only)
    if setting is None:
        monkeypatch.delenv("ENGAGEMENT_TIME_ZONE", raising=False)
    else:
        monkeypatch.setenv("ENGAGEMENT_TIME_ZONE", setting)
    report = ingest_source(warehouse, folder, "orders", now=NOW)
    expected = {"orders/orders.csv": "ordered_at: 2026-06-30T23:30:00-04:00"}
    assert report.other_offsets == (expected if said else {})
    message = other_offset_message("orders/orders.csv", expected["orders/orders.csv"])
    assert message.startswith(
        "orders/orders.csv: its timestamps are written at an offset other than UTC's "
        "(ordered_at: 2026-06-30T23:30:00-04:00): they are staged as UTC instants"
    )
    assert "set ENGAGEMENT_TIME_ZONE" in message
