"""The Spark engine against the DuckDB engine on the bundled sample: every table the Spark engine
builds equals the DuckDB engine's (integers and text exactly, numbers to 1e-9 relative).

Both engines run once per test session (`tests/conftest.py::spark_run`, `tests/spark_runs.py`,
one shared Spark session), from the same exports with the same run time; each test compares one
table. The DuckDB side of the value marts is the DuckDB engine's own assets (`assets/value.py`),
run on the same staging.
"""

import json
import math
from datetime import date
from decimal import Decimal

import duckdb
import polars as pl
import pytest

from engagement_box import dictionary
from engagement_box.spark import lake, pipeline
from engagement_box.staging.contracts import SOURCES
from engagement_box.value import rfm
from engagement_box.value.summary import customer_summary, customers_left_out, orders_left_out
from tests.spark_runs import AS_OF

pytestmark = pytest.mark.spark

VALUE_MARTS = (
    "customer_rfm",
    "customer_value",
    "model_fit",
    "model_validation",
    "cohort_retention",
)


# Columns that say when and how long, not what: never equal between two runs.
RUN_COLUMNS = ("fit_seconds", "fitted_at")
# Text holding numbers as JSON: compared number by number.
JSON_COLUMNS = ("params", "frequency_spend_correlation")


def close(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def assert_same_rows(duck: pl.DataFrame, spark: pl.DataFrame, key: list[str]) -> None:
    """Same columns, same rows by `key`: integers, text, dates and decimals exactly, floats (also
    inside JSON text) to 1e-9 relative."""
    assert duck.columns == spark.columns
    assert duck.height == spark.height
    duck, spark = duck.sort(key, nulls_last=True), spark.sort(key, nulls_last=True)
    for column in duck.columns:
        left, right = duck[column], spark[column]
        if column in JSON_COLUMNS:
            for a, b in zip(left.to_list(), right.to_list(), strict=True):
                assert close(json.loads(a), json.loads(b)), (column, a, b)
        elif left.dtype.is_float() or right.dtype.is_float():
            for a, b in zip(left.to_list(), right.to_list(), strict=True):
                if a is None or b is None:
                    assert a is None and b is None, column
                else:
                    assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (column, a, b)
        elif left.dtype.is_integer() and right.dtype.is_integer():
            assert left.cast(pl.Int64).to_list() == right.cast(pl.Int64).to_list(), column
        else:
            values = [Decimal(str(v)) if isinstance(v, Decimal) else v for v in left.to_list()]
            assert values == right.to_list(), column


@pytest.fixture(scope="module")
def engines(spark_run):
    """(DuckDB connection, SparkTables, Spark staging reports, lake) after both engines ran on
    the bundled sample (`tests/conftest.py::spark_run`, built once per session)."""
    con, tables, reports, lake_dir, _ = spark_run
    return con, tables, reports, lake_dir


def duck(con, query: str) -> pl.DataFrame:
    return con.execute(query).pl()


def spark_rows(tables, query: str) -> pl.DataFrame:
    return pl.from_arrow(tables.spark.sql(query).toArrow())


@pytest.mark.parametrize("source", list(SOURCES))
def test_staged_rows_and_reconciliation(engines, source):
    con, tables, reports, _ = engines
    columns = ", ".join(f'"{c}"' for c in [*SOURCES[source].columns, "source_file", "source_row"])
    spark_columns = columns.replace('"', "`")
    assert_same_rows(
        duck(con, f"SELECT {columns} FROM staging.{source}"),
        spark_rows(tables, f"SELECT {spark_columns} FROM staging.{source}"),
        ["source_file", "source_row"],
    )
    read, staged, quarantined = duck(
        con,
        "SELECT sum(rows_read), sum(rows_staged), sum(rows_quarantined) FROM "
        f"staging.ingested_files WHERE source = '{source}'",
    ).row(0)
    assert reports[source] == (read, staged, quarantined)
    assert read == staged + quarantined


def test_quarantine_rows_and_reasons(engines):
    con, tables, _, _ = engines
    columns = 'source, source_file, source_row, "column", reason, detail, reasons, raw_values'
    assert_same_rows(
        duck(con, f"SELECT {columns} FROM staging.quarantine"),
        spark_rows(tables, f"SELECT {columns.replace(chr(34), '`')} FROM staging.quarantine"),
        ["source", "source_file", "source_row"],
    )


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("customer_merge", ["customer_id"]),
        ("resolved_customers", ["customer_id"]),
        ("identity_links", ["source", "role", "key_type", "normalized_value"]),
    ],
)
def test_identity_tables(engines, table, key):
    con, tables, _, _ = engines
    assert_same_rows(
        duck(con, f"SELECT * FROM intermediate.{table}"),
        spark_rows(tables, f"SELECT * FROM intermediate.{table}"),
        key,
    )


def test_orders_resolution(engines):
    con, tables, _, _ = engines
    assert_same_rows(
        duck(con, "SELECT * FROM intermediate.orders_resolution"),
        spark_rows(tables, "SELECT * FROM intermediate.orders_resolution"),
        ["order_id"],
    )


@pytest.mark.parametrize("currency", ["USD", "JPY"])
def test_orders_left_out_for_want_of_a_rate(engines, currency):
    """The Spark engine published versions without the orders it had no FX rate for, and
    without the DuckDB engine's blocking check (a review): it counts them the same way. In
    JPY the sample's USD orders have no rate, and are left out."""
    con, tables, _, _ = engines
    try:
        pipeline.reporting_rates(tables, currency)
        got = pipeline.orders_left_out(tables, AS_OF, [currency])
    finally:
        pipeline.reporting_rates(tables, "USD")  # the session's other tests read USD rates
    expected = orders_left_out(con, AS_OF, currency=currency, fx_rates={})
    assert got == expected
    assert (sum(got[0].values()) > 0) == (currency == "JPY") and got[1] > 0


def test_customers_left_out_for_want_of_a_rate(engines):
    """The customers the RFM leaves out rather than call prospects (their completed orders are
    all without a rate: a review found them published as Prospects) are the same on both
    engines: one SQL file, transpiled. In JPY every buyer's USD orders are left out."""
    con, tables, _, _ = engines
    try:
        pipeline.reporting_rates(tables, "JPY")
        got = pl.from_arrow(pipeline.customers_left_out(tables, AS_OF, ["JPY"]).toArrow())
    finally:
        pipeline.reporting_rates(tables, "USD")  # the session's other tests read USD rates
    expected = customers_left_out(con, AS_OF, currency="JPY", fx_rates={})
    assert expected.height > 0
    assert_same_rows(expected, got, ["customer_id"])
    usd = customers_left_out(con, AS_OF, currency="USD", fx_rates={})
    assert usd.height == pipeline.customers_left_out(tables, AS_OF, ["USD"]).count() == 0


def test_score_rfm_leaves_out_buyers_without_a_rate(spark):
    """`spark/value.py::score_rfm` gives the rows of `rfm.score_rfm` with `left_out`: a profile
    whose orders are all left out for want of an FX rate gets no row (it was a Prospect), one
    valued on its other orders is scored, a profile without an order is a Prospect."""
    summary = pl.DataFrame(
        {
            "customer_id": ["a", "b"],
            "last_order_date": [date(2024, 6, 1), date(2024, 3, 1)],
            "order_count": [3, 1],
            "total_spend": [90.0, 20.0],
        }
    )
    customers = ["a", "b", "p", "x"]
    left_out = ["b", "x", "guest"]
    expected = rfm.score_rfm(summary, AS_OF, customers=customers, left_out=left_out)

    from engagement_box.spark import value

    got = value.score_rfm(
        spark,
        spark.createDataFrame(summary.to_arrow()),
        spark.createDataFrame([(c,) for c in customers], "customer_id string"),
        AS_OF,
        spark.createDataFrame([(c,) for c in left_out], "customer_id string"),
    )
    got = pl.from_arrow(got.toArrow())
    assert got["customer_id"].sort().to_list() == ["a", "b", "p"]
    assert_same_rows(expected.with_columns(pl.col("segment").cast(pl.String)), got, ["customer_id"])


def test_unvalued_buyers_get_no_clv_cev_or_quadrant_as_in_the_duckdb_engine(spark):
    """`spark/engagement.py::unvalued_customers` finds the profiles `metrics.unvalued_customers`
    finds (neither a CLV nor a customer_rfm row: every completed order without an FX rate), and
    the Spark engine's rows from that flag (`metrics.finish_values` and `with_quadrants` per
    Arrow batch) are the DuckDB engine's: clv, cev and quadrant NULL, CRV and CKV kept, and a
    Costly Referrer still one (it holds whatever the CLV)."""
    from engagement_box.engagement import metrics, quadrants
    from engagement_box.spark import engagement

    profiles = pl.DataFrame({"customer_id": ["a", "p", "r", "u"]})
    clv = pl.DataFrame({"customer_id": ["a", "g"], "clv": [50.0, 10.0]})
    rfm_rows = pl.DataFrame({"customer_id": ["a", "g", "p"]})
    expected = metrics.unvalued_customers(profiles, clv, rfm_rows)
    got = engagement.unvalued_customers(
        *(spark.createDataFrame(f.to_arrow()) for f in (profiles, clv, rfm_rows))
    )
    got = pl.from_arrow(got.toArrow())["customer_id"].sort().to_list()
    assert got == expected.to_list() == ["r", "u"]

    ids = ["a", "g", "p", "r", "u"]
    parts = pl.DataFrame(
        {
            "customer_id": ids,
            "buyer": [True, True, None, None, None],
            "clv": [50.0, 10.0, None, None, None],
            "crv": [1.0, 0.5, 0.2, -5.0, 0.2],
            "crv_referrals": [1, 0, 0, 2, 0],
            "ckv_reviews": [0.0, 0.0, 0.0, 0.0, 3.0],
            metrics.UNVALUED: [None, None, None, True, True],
        }
    )
    schema = engagement._engagement_schema()
    missing = [c for c in metrics.VALUE_COLUMNS if c not in parts.columns]
    parts = parts.with_columns(pl.lit(None, dtype=pl.Float64).alias(c) for c in missing)
    parts = parts.with_columns(pl.col("review_count").cast(pl.Int64))

    def rows(batch: pl.DataFrame) -> pl.DataFrame:
        return quadrants.with_quadrants(metrics.finish_values(batch), 20.0, 0.1)

    duck_rows = rows(parts)
    spark_rows_ = pl.from_arrow(
        engagement.per_batch(spark.createDataFrame(parts.to_arrow()), rows, schema).toArrow()
    )
    assert_same_rows(duck_rows, spark_rows_, ["customer_id"])
    unvalued = duck_rows.filter(pl.col("customer_id").is_in(["r", "u"]))
    assert unvalued.select("clv", "cev", "quadrant", "ckv").rows() == [
        (None, None, quadrants.COSTLY_REFERRERS, 0.0),
        (None, None, None, 3.0),
    ]
    assert duck_rows.filter(pl.col("customer_id") == "p")["quadrant"].to_list() == [
        quadrants.MISERS
    ]


@pytest.mark.parametrize("start", [None, date(2024, 1, 1)])
def test_customer_summary(engines, start):
    con, tables, _, _ = engines
    expected = customer_summary(con, AS_OF, start, currency="USD", fx_rates={})
    got = pipeline.customer_summary(tables, AS_OF, ["USD"], [1.0], start)
    assert_same_rows(expected, pl.from_arrow(got.toArrow()), ["customer_id"])


def duckdb_marts(con, as_of: date = AS_OF) -> dict[str, pl.DataFrame]:
    """The DuckDB engine's rows of each value mart as of `as_of` (what it publishes), without the
    columns that record the run's clock."""
    return {
        mart: con.execute(f"SELECT * FROM work.{mart} WHERE as_of = $as_of", {"as_of": as_of})
        .pl()
        .drop(RUN_COLUMNS, strict=False)
        for mart in VALUE_MARTS
    }


@pytest.fixture(scope="module")
def marts(engines):
    con, _, _, lake_dir = engines
    reader = duckdb.connect()
    published = lake.attach(reader, lake_dir)
    yield reader, published, duckdb_marts(con)
    reader.close()


@pytest.mark.parametrize("mart", VALUE_MARTS)
def test_published_marts_equal_the_duckdb_engine(marts, mart):
    """Read back from the lake by DuckDB, as an analyst does (`lake.attach`): every column of
    the data dictionary, every row."""
    reader, published, expected = marts
    assert mart in published
    assert_published_mart_equals(reader, mart, expected[mart])


def assert_published_mart_equals(reader, mart: str, expected: pl.DataFrame) -> None:
    """The lake's current `mart` (attached in `reader`) has the data dictionary's columns and
    the rows of `expected`."""
    got = reader.execute(f"SELECT * FROM marts.{mart}").pl()
    assert got.columns == [c.name for c in dictionary.table(mart).columns]
    assert got.height > 0
    key = list(dictionary.table(mart).key)
    assert_same_rows(expected, got.drop(RUN_COLUMNS, strict=False), key)


def test_a_version_is_published_whole_and_kept(marts, engines):
    reader, published, _ = marts
    _, _, _, lake_dir = engines
    record = lake.current(lake_dir)
    assert record["snapshot_id"] == 1 and sorted(record["marts"]) == sorted(published)
    # the mart's folder is a link to its version; the history view carries the snapshot id
    assert (lake_dir / "marts" / "customer_rfm").resolve() == (
        lake_dir / "history" / "customer_rfm" / "snapshot_id=1"
    )
    counts = reader.execute(
        "SELECT snapshot_id, count(*) FROM marts.history_customer_rfm GROUP BY ALL"
    ).fetchall()
    assert counts == [(1, reader.execute("SELECT count(*) FROM marts.customer_rfm").fetchone()[0])]
