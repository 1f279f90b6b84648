"""The Spark engine's identity against the DuckDB engine's on profiles that share keys: the same
people, and the same placeholder keys (an email or handle on more profiles than the limit links
no one and resolves nothing), from the same staged rows."""

from datetime import date, datetime

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


def test_spark_counts_the_erased_carriers_of_a_placeholder_as_duckdb_does(
    session, tmp_path, monkeypatch
):
    """Erasing one of the six profiles on the shop's address leaves five, under the limit: the
    DuckDB engine still counts the erased one (by its salted hash), and so must the Spark
    engine, from the register `erase` writes, or the five strangers become one person there."""
    from engagement_box.governance import erasure

    monkeypatch.delenv(erasure.SALT_ENV, raising=False)
    spark = session
    working = tmp_path / "duck.duckdb"
    con = duckdb.connect(str(working))
    con.execute("create schema staging")
    for name, frame in staged().items():  # as staged: with the file and row they came from
        con.register("rows", frame.to_arrow())
        con.execute(
            f"create table staging.{name} as select *, '{name}.csv' as source_file, "
            "cast(row_number() over () as bigint) as source_row from rows"
        )
        con.unregister("rows")
    build_identity_links(con, 5)
    erasure.erase(con, customer_id="p0")
    build_identity_links(con, 5)

    tables = SparkTables(spark, tmp_path / "lake")
    for name in staged():  # what the Spark ingest stages: the erased rows left out
        frame = con.execute(f"select * from staging.{name}").pl()
        frame.write_parquet(tmp_path / f"{name}.parquet")
        tables.save(f"staging.{name}", spark.read.parquet(str(tmp_path / f"{name}.parquet")))
    erased = erasure.register_profile_keys(working)
    assert len(erased[0]) == 1 and "noemail" not in str(erased)  # its address, by hash
    pipeline.build_identity(tables, 5, erased)

    for query in (MERGE, LINKS, ORDERS, PEOPLE):
        duck = con.execute(query).fetchall()
        lake = [tuple(r) for r in spark.sql(query).collect()]
        assert lake == duck, query
    merged = dict(con.execute(MERGE).fetchall())
    assert {merged[f"p{i}"] for i in range(1, 6)} == {f"p{i}" for i in range(1, 6)}
    con.close()


def test_erasing_on_a_spark_only_warehouse_keeps_the_erased_carrier_counted(
    session, tmp_path, monkeypatch
):
    """A warehouse run only on Spark has no DuckDB staging: `erase` read the person's profiles
    from nowhere, the register listed no key, and the five strangers left on the shop's address
    merged on the next Spark run. The erasure now reads the lake's staged profiles."""
    from engagement_box.governance import erasure

    monkeypatch.delenv(erasure.SALT_ENV, raising=False)
    spark = session
    lake = tmp_path / "lake"
    tables = SparkTables(spark, lake)

    def stage(frames: dict[str, pl.DataFrame]) -> None:
        for name, frame in frames.items():
            frame.write_parquet(tmp_path / f"{name}.parquet")
            tables.save(f"staging.{name}", spark.read.parquet(str(tmp_path / f"{name}.parquet")))

    frames = staged()
    stage(frames)
    working = tmp_path / "working.duckdb"
    con = duckdb.connect(str(working))
    erasure.erase(con, customer_id="p0", lake=lake)
    con.close()
    # the next Spark run's staging leaves the erased profile out (the register's hashes)
    stage({**frames, "customers": frames["customers"].filter(pl.col("customer_id") != "p0")})
    pipeline.build_identity(tables, 5, erasure.register_profile_keys(working))
    merged = dict(spark.sql(MERGE).collect())
    assert {merged[f"p{i}"] for i in range(1, 6)} == {f"p{i}" for i in range(1, 6)}


def test_spark_staging_counts_an_erased_carrier_its_register_does_not_list(
    session, tmp_path, monkeypatch
):
    """A warehouse whose person was erased before registers listed erased profiles' keys: the
    register holds the person's hash and no key. The DuckDB ingest records the keys of an
    erased profile it reads again; the Spark staging reads every file on every run, and did
    not: the five strangers left on the shop's address merged there. It now hands identity the
    keys of the profiles it leaves out, by hash."""
    from engagement_box.governance import erasure

    monkeypatch.delenv(erasure.SALT_ENV, raising=False)
    spark = session
    exports = tmp_path / "exports"
    (exports / "customers").mkdir(parents=True)
    staged()["customers"].write_csv(exports / "customers" / "customers.csv")
    working = tmp_path / "working.duckdb"
    con = duckdb.connect(str(working))
    erasure.erase(con, customer_id="p0")  # no staged profile: the register lists no key
    con.close()
    assert erasure.register_profile_keys(working)[0] == []

    tables = SparkTables(spark, tmp_path / "lake")
    at = datetime(2026, 1, 2)
    reports = pipeline.stage_all(tables, exports, "run", at, erasure.register_of(working))
    assert reports["customers"].rows_erased == 1
    carriers = reports["customers"].erased_profile_keys
    assert {kind for _, kind, _ in carriers} == {"email"} and "noemail" not in str(carriers)
    pipeline.build_identity(tables, 5, erasure.register_profile_keys(working))
    merged = dict(spark.sql(MERGE).collect())
    assert {merged[f"p{i}"] for i in range(1, 6)} == {f"p{i}" for i in range(1, 6)}

    # Without the erased profile in the files, nothing is left to count: the next staging
    # forgets what it read (the register is what remembers an erasure).
    (exports / "customers" / "customers.csv").unlink()
    pipeline.stage_all(tables, exports, "run2", at, erasure.register_of(working))
    assert not spark.catalog.tableExists(pipeline.READ_CARRIERS_TABLE)


def test_the_warnings_every_run_meets_by_design_are_quieted(spark):
    """A sample run printed 218 `WindowExec: No Partition Defined` and 31 `Namespace ... was
    created concurrently` warnings of its 302 console lines (a review): those two loggers are
    set to errors in every session the project starts (`session.quiet_known_warnings`)."""
    from engagement_box.spark.session import QUIETED_LOGGERS

    # each logger's own configuration (the tests' session sets the root logger to errors too)
    config = spark.sparkContext._jvm.org.apache.logging.log4j.LogManager.getContext(False)
    for name in QUIETED_LOGGERS:
        logger = config.getConfiguration().getLoggerConfig(name)
        assert (logger.getName(), logger.getLevel().toString()) == (name, "ERROR")


def test_spark_labels_a_long_chain_as_the_duckdb_engine_does(session):
    """The Spark engine's components on a chain of 300 profiles in a shuffled rank order plus a
    few stars: the labels scipy's components give the DuckDB engine. Moving labels one edge per
    round took a Spark job per profile of the chain; FastSV's hooking takes about log n."""
    import random

    import numpy as np

    from engagement_box.identity.components import component_labels

    ranks = list(range(1, 301))
    random.Random(7).shuffle(ranks)
    pairs = list(zip(ranks, ranks[1:], strict=False))
    pairs += [(2000 + k, 2000 + k + i) for k in (0, 10, 20) for i in range(1, 5)]
    edges = session.createDataFrame(
        pairs + [(b, a) for a, b in pairs], "from_rank long, to_rank long"
    )
    got = sorted(tuple(row) for row in pipeline.component_labels(edges).collect())
    rank, label = component_labels(
        np.array([a for a, _ in pairs], dtype=np.int64),
        np.array([b for _, b in pairs], dtype=np.int64),
    )
    assert got == list(zip(rank.tolist(), label.tolist(), strict=True))
    assert {label for _, label in got} == {1, 2000, 2010, 2020}


def test_spark_applies_a_later_customers_files_consent_as_duckdb_does(session, tmp_path):
    """A withdrawal of marketing consent in a later customers file (its row of a staged profile
    is a quarantined repeat): the DuckDB engine applies it, the Spark engine kept the first
    row's consent, and its audiences with it (docs/SPARK.md's gap). Both now take the latest
    file's word: a withdrawal in a later file, and the first file edited after it (its content
    is newer, so its word wins again)."""
    from engagement_box.staging.contracts import SOURCES
    from engagement_box.staging.ingestion import ingest_source

    spark = session
    exports = tmp_path / "exports"
    for source in SOURCES:
        (exports / source).mkdir(parents=True)
    folder = exports / "customers"
    profiles = pl.DataFrame(
        [
            customer("c1", "one@example.com", None),
            customer("c2", "two@example.com", None),
            customer("c3", "three@example.com", "three"),
            customer("c4", "four@example.com", "three"),  # one person with c3
        ],
        schema=CUSTOMER_SCHEMA,
    ).with_columns(marketing_consent=pl.lit(True))
    profiles.write_csv(folder / "customers.csv")

    def consent_of(row_ids: list[str], value: bool) -> pl.DataFrame:
        return profiles.filter(pl.col("customer_id").is_in(row_ids)).with_columns(
            marketing_consent=pl.lit(value)
        )

    con = duckdb.connect(str(tmp_path / "duck.duckdb"))
    tables = SparkTables(spark, tmp_path / "lake")
    consents = (
        "select customer_id, marketing_consent from intermediate.resolved_customers order by 1"
    )

    def run(day: int) -> dict[str, bool]:
        at = datetime(2026, 1, day)
        for source in SOURCES:
            ingest_source(con, exports, source, now=at)
        build_identity_links(con, 5)
        pipeline.stage_all(tables, exports, f"run{day}", at)
        pipeline.build_identity(tables, 5)
        duck = con.execute(consents).fetchall()
        lake = [tuple(r) for r in spark.sql(consents).collect()]
        assert lake == duck
        return dict(duck)

    assert run(2) == {"c1": True, "c2": True, "c3": True}
    consent_of(["c1", "c4"], False).write_csv(folder / "customers_2.csv")  # two withdraw
    assert run(3) == {"c1": False, "c2": True, "c3": False}
    # the first file edited after the later one: c1 opts out there too, and its content is now
    # the latest word on every profile it holds (c4's true: a re-consent, three runs in all to
    # keep the suite short; a re-consent in a later file is the DuckDB tests')
    edited = profiles.with_columns(marketing_consent=pl.col("customer_id") != "c1")
    edited.write_csv(folder / "customers.csv")
    assert run(4) == {"c1": False, "c2": True, "c3": True}
    con.close()
