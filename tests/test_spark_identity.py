"""The Spark engine's identity against the DuckDB engine's on profiles that share keys: the same
people, and the same placeholder keys (an email or handle on more profiles than the limit links
no one and resolves nothing), from the same staged rows."""

from datetime import date

import duckdb
import polars as pl
import pytest

from engagement_box.identity.links import build_identity_links, shared_keys, shared_keys_on_spark
from engagement_box.spark import pipeline
from engagement_box.spark.tables import SparkTables
from tests.test_customer_merge import (
    CUSTOMER_SCHEMA,
    ORDER_SCHEMA,
    REFERRAL_SCHEMA,
    REVIEW_SCHEMA,
    SOCIAL_SCHEMA,
    customer,
    order,
)

pytestmark = pytest.mark.spark


@pytest.fixture
def session(spark, spark_run):
    """The shared Spark session, its tables put back as the parity run left them afterwards
    (this test registers tables of its own under the same names)."""
    from assets.spark import lake_tables

    yield spark
    lake_tables(spark, spark_run[3])


def staged() -> dict[str, pl.DataFrame]:
    shop = [customer(f"p{i}", "noemail@shop.com", None) for i in range(6)]
    fans = [customer(f"f{i}", f"f{i}@example.com", f"f{i};theshop") for i in range(7)]
    family = [
        customer("m1", "home@example.com", "mum", signup=date(2020, 1, 1)),
        customer("m2", "home@example.com", None, signup=date(2021, 1, 1)),
        customer("m3", "kid@example.com", "mum", signup=date(2022, 1, 1)),
    ]
    return {
        "customers": pl.DataFrame(shop + fans + family, schema=CUSTOMER_SCHEMA),
        "orders": pl.DataFrame(
            [
                order("o1", None, "noemail@shop.com"),
                order("o2", "p2", "noemail@shop.com"),
                order("o3", None, "kid@example.com"),
            ],
            schema=ORDER_SCHEMA,
        ),
        "reviews": pl.DataFrame([], schema=REVIEW_SCHEMA),
        "social": pl.DataFrame([], schema=SOCIAL_SCHEMA),
        "referrals": pl.DataFrame([], schema=REFERRAL_SCHEMA),
    }


MERGE = "select customer_id, resolved_customer_id from intermediate.customer_merge order by 1"
LINKS = (
    "select role, normalized_value, customer_id, match_rule, source_rows "
    "from intermediate.identity_links where source = 'customers' order by 1, 2"
)
ORDERS = "select order_id, customer_id from intermediate.orders_resolution order by 1"
PEOPLE = "select customer_id, email, profile_count from intermediate.resolved_customers order by 1"


@pytest.mark.parametrize("limit", [5, 7])
def test_spark_finds_the_same_people_and_placeholders(session, tmp_path, limit):
    spark = session
    frames = staged()
    con = duckdb.connect(str(tmp_path / "duck.duckdb"))
    con.execute("create schema staging")
    tables = SparkTables(spark, tmp_path / f"lake{limit}")
    for name, frame in frames.items():
        con.register("rows", frame.to_arrow())
        con.execute(f"create table staging.{name} as select * from rows")
        con.unregister("rows")
        frame.write_parquet(tmp_path / f"{name}.parquet")  # typed even when empty
        tables.save(f"staging.{name}", spark.read.parquet(str(tmp_path / f"{name}.parquet")))
    build_identity_links(con, limit)
    pipeline.build_identity(tables, limit)

    for query in (MERGE, LINKS, ORDERS, PEOPLE):
        duck = con.execute(query).fetchall()
        lake = [tuple(r) for r in spark.sql(query).collect()]
        assert lake == duck, query
    # What the identity step's check says, on either engine.
    assert shared_keys_on_spark(spark) == shared_keys(con)
    merged = dict(con.execute(MERGE).fetchall())
    if limit == 5:  # the shop's address (6) and handle (7) are placeholders
        assert len(set(merged.values())) == 6 + 7 + 1
        assert dict(con.execute(ORDERS).fetchall()) == {"o1": None, "o2": "p2", "o3": "m1"}
        assert shared_keys(con) == [
            {"key_type": "email", "keys": 1, "most_profiles": 6},
            {"key_type": "handle", "keys": 1, "most_profiles": 7},
        ]
    else:  # 7: the six shop profiles are one person, the seven fans another
        assert len(set(merged.values())) == 1 + 1 + 1
    con.close()
