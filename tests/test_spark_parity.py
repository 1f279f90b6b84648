"""The Spark engine against the DuckDB engine on the bundled sample: every table the Spark engine
builds equals the DuckDB engine's (integers and text exactly, numbers to 1e-9 relative).

Both engines run once per test session (`tests/conftest.py::spark_run`, one shared Spark session),
from the same exports with the same run time; each test compares one table."""

import math
from datetime import date
from decimal import Decimal

import duckdb
import polars as pl
import pytest

from engagement_box.spark import lake, pipeline
from engagement_box.staging.contracts import SOURCES
from engagement_box.value import rfm
from engagement_box.value.fitting import fit_bgnbd, fit_gamma_gamma
from engagement_box.value.scoring import score_customers
from engagement_box.value.summary import customer_summary
from tests.spark_runs import AS_OF

pytestmark = pytest.mark.spark


def assert_same_rows(duck: pl.DataFrame, spark: pl.DataFrame, key: list[str]) -> None:
    """Same columns, same rows by `key`: integers, text, dates and decimals exactly, floats to
    1e-9 relative."""
    assert duck.columns == spark.columns
    assert duck.height == spark.height
    duck, spark = duck.sort(key, nulls_last=True), spark.sort(key, nulls_last=True)
    for column in duck.columns:
        left, right = duck[column], spark[column]
        if left.dtype.is_float() or right.dtype.is_float():
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
    """(DuckDB connection, SparkTables, Spark staging reports, lake) after both engines ran
    (`tests/conftest.py::spark_run`, built once per session)."""
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


@pytest.mark.parametrize("start", [None, date(2024, 1, 1)])
def test_customer_summary(engines, start):
    con, tables, _, _ = engines
    expected = customer_summary(con, AS_OF, start, currency="USD", fx_rates={})
    got = pipeline.customer_summary(tables, AS_OF, ["USD"], [1.0], start)
    assert_same_rows(expected, pl.from_arrow(got.toArrow()), ["customer_id"])


def duckdb_marts(con) -> dict[str, pl.DataFrame]:
    """What the DuckDB engine's functions give for the marts the Spark engine publishes."""
    summary = customer_summary(con, AS_OF, currency="USD", fx_rates={})
    customers = con.execute(
        "SELECT customer_id FROM intermediate.resolved_customers WHERE signup_date <= $as_of",
        {"as_of": AS_OF},
    ).pl()["customer_id"]
    scored = rfm.score_rfm(summary, AS_OF, customers=customers)
    x, t_x, T, m = (
        summary[c].cast(pl.Float64).to_numpy()
        for c in ("frequency", "recency_days", "T_days", "monetary_value")
    )
    bgnbd = fit_bgnbd(x, t_x, T, time_unit="D")
    gamma_gamma = fit_gamma_gamma(x, m)
    values = score_customers(bgnbd, gamma_gamma, x, t_x, T, m)
    return {
        "customer_rfm": scored.with_columns(
            pl.col("segment").cast(pl.String), pl.lit(AS_OF).alias("as_of")
        ),
        "customer_value": summary.select(
            "customer_id",
            "frequency",
            "recency_days",
            "T_days",
            pl.col("monetary_value").cast(pl.Float64),
            pl.Series("p_alive", values["p_alive"]),
            pl.Series("expected_order_value", values["expected_order_value"]),
            pl.Series("clv", values["clv"]),
            pl.lit(AS_OF).alias("as_of"),
        ),
        "model_fit": pl.DataFrame(
            [
                (r.model, name, float(v), r.log_likelihood, r.n_customers)
                for r in (bgnbd, gamma_gamma)
                for name, v in r.params.items()
            ],
            schema=["model", "parameter", "value", "log_likelihood", "n_customers"],
            orient="row",
        ).with_columns(pl.lit(AS_OF).alias("as_of")),
    }


@pytest.fixture(scope="module")
def marts(engines):
    con, _, _, lake_dir = engines
    reader = duckdb.connect()
    published = lake.attach(reader, lake_dir)
    yield reader, published, duckdb_marts(con)
    reader.close()


@pytest.mark.parametrize(
    ("mart", "key"),
    [
        ("customer_rfm", ["customer_id"]),
        ("customer_value", ["customer_id"]),
        ("model_fit", ["model", "parameter"]),
    ],
)
def test_published_marts_equal_the_duckdb_engine(marts, mart, key):
    """Read back from the lake by DuckDB, as an analyst does (`lake.attach`)."""
    reader, published, expected = marts
    assert mart in published
    got = reader.execute(f"SELECT * FROM marts.{mart}").pl()
    assert_same_rows(expected[mart], got, key)


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
