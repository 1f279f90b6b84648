"""Versions: snapshots, time travel, current version by as-of, migration, retention."""

from datetime import datetime, timedelta

import polars as pl
import pytest

from engagement_box.frames import write_frame
from engagement_box.governance import versions


def publish_version(con, as_of: str, segments: dict[str, str], cev: dict[str, float], **kw):
    write_frame(
        con,
        "work",
        "customer_rfm",
        pl.DataFrame({"customer_id": list(segments), "segment": list(segments.values())}),
    )
    quadrant = {c: ("Champions" if v > 10 else "Misers") for c, v in cev.items()}
    write_frame(
        con,
        "work",
        "engagement_value",
        pl.DataFrame(
            {
                "customer_id": list(cev),
                "cev": list(cev.values()),
                "quadrant": [quadrant[c] for c in cev],
            }
        ),
    )
    return versions.publish(
        con,
        ["customer_rfm", "engagement_value"],
        run_id="r",
        partition_key=None,
        as_of=as_of,
        settings={"as_of": as_of},
        **kw,
    )


def rows(con, sql: str):
    return con.execute(sql).fetchall()


def test_each_publish_is_a_version_that_stays_queryable(warehouse):
    first = publish_version(
        warehouse, "2025-01-31", {"a": "Champions", "b": "At Risk"}, {"a": 20, "b": 1}
    )
    second = publish_version(
        warehouse, "2025-02-28", {"a": "At Risk", "b": "At Risk"}, {"a": 5, "b": 1}
    )

    assert (first.snapshot_id, second.snapshot_id) == (1, 2)
    assert rows(warehouse, "SELECT * FROM marts.customer_rfm ORDER BY 1") == [
        ("a", "At Risk"),
        ("b", "At Risk"),
    ]
    assert rows(warehouse, "SELECT * FROM marts.customer_rfm_at(1) ORDER BY 1") == [
        ("a", "Champions"),
        ("b", "At Risk"),
    ]
    assert rows(
        warehouse, "SELECT snapshot_id, as_of::VARCHAR, is_current FROM marts.snapshots"
    ) == [
        (1, "2025-01-31", True),
        (2, "2025-02-28", True),
    ]


def test_backfill_of_an_earlier_month_adds_history_but_keeps_the_current_version(warehouse):
    publish_version(warehouse, "2025-03-31", {"a": "Champions"}, {"a": 20})
    backfill = publish_version(warehouse, "2025-01-31", {"a": "New Customers"}, {"a": 2})

    assert not backfill.current
    assert rows(warehouse, "SELECT segment FROM marts.customer_rfm") == [("Champions",)]
    assert rows(warehouse, "SELECT segment FROM marts.customer_rfm_at(2)") == [("New Customers",)]


def test_segment_migration_counts_customers_and_value_moved(warehouse):
    publish_version(warehouse, "2025-01-31", {"a": "Champions", "b": "At Risk", "c": "At Risk"},
                    {"a": 20, "b": 1, "c": 2})  # fmt: skip
    second = publish_version(warehouse, "2025-02-28", {"a": "At Risk", "b": "At Risk", "d": "New Customers"},
                             {"a": 5, "b": 1, "d": 3})  # fmt: skip

    got = rows(
        warehouse,
        "SELECT from_snapshot, to_snapshot, from_value, to_value, moved, customers, cev_from, cev_to "
        "FROM marts.segment_migration WHERE dimension = 'rfm_segment' ORDER BY from_value, to_value",
    )
    assert second.migration_rows > 0
    assert got == [
        (1, 2, "(none)", "New Customers", True, 1, 0.0, 3.0),
        (1, 2, "At Risk", "(none)", True, 1, 2.0, 0.0),
        (1, 2, "At Risk", "At Risk", False, 1, 1.0, 1.0),
        (1, 2, "Champions", "At Risk", True, 1, 20.0, 5.0),
    ]
    quadrants = rows(
        warehouse,
        "SELECT from_value, to_value, customers FROM marts.segment_migration "
        "WHERE dimension = 'quadrant' AND moved ORDER BY 1, 2",
    )
    assert ("Champions", "Misers", 1) in quadrants


def test_retention_keeps_the_newest_versions_and_always_the_current_one(warehouse):
    for month in range(1, 6):
        publish_version(warehouse, f"2025-0{month}-28", {"a": f"S{month}"}, {"a": month})
    result = versions.apply_retention(warehouse, keep_versions=2, keep_days=10_000)

    assert result.expired == [1, 2, 3]
    assert rows(warehouse, "SELECT DISTINCT snapshot_id FROM history.customer_rfm ORDER BY 1") == [
        (4,),
        (5,),
    ]
    assert rows(warehouse, "SELECT count(*) FROM marts.snapshots WHERE expired_at IS NOT NULL") == [
        (3,)
    ]
    assert rows(warehouse, "SELECT DISTINCT from_snapshot FROM marts.segment_migration") == [(4,)]
    assert rows(warehouse, "SELECT * FROM marts.customer_rfm_at(2)") == []


def test_retention_by_age_never_drops_the_current_version(warehouse):
    publish_version(warehouse, "2025-03-31", {"a": "Champions"}, {"a": 20})
    publish_version(warehouse, "2025-01-31", {"a": "New Customers"}, {"a": 2})  # a backfill
    later = datetime.now() + timedelta(days=365)

    result = versions.apply_retention(warehouse, keep_versions=10, keep_days=30, now=later)

    assert result.expired == [2]
    assert rows(warehouse, "SELECT segment FROM marts.customer_rfm_at(1)") == [("Champions",)]


def test_a_new_column_in_a_later_version_reads_null_in_older_ones(warehouse):
    publish_version(warehouse, "2025-01-31", {"a": "Champions"}, {"a": 20})
    write_frame(warehouse, "work", "customer_rfm",
                pl.DataFrame({"customer_id": ["a"], "segment": ["At Risk"], "r_score": [2]}))  # fmt: skip
    versions.publish(warehouse, ["customer_rfm"], run_id="r", partition_key=None,
                     as_of="2025-02-28", settings={})  # fmt: skip
    assert rows(warehouse, "SELECT * FROM marts.customer_rfm_at(1)") == [("a", "Champions", None)]
    assert rows(warehouse, "SELECT * FROM marts.customer_rfm_at(2)") == [("a", "At Risk", 2)]


def test_publish_without_its_work_table_changes_nothing(warehouse):
    publish_version(warehouse, "2025-01-31", {"a": "Champions"}, {"a": 20})
    with pytest.raises(ValueError, match="work tables missing"):
        versions.publish(warehouse, ["customer_rfm", "not_there"], run_id="r",
                         partition_key=None, as_of="2025-02-28", settings={})  # fmt: skip
    assert rows(warehouse, "SELECT count(*) FROM marts.snapshots") == [(1,)]
