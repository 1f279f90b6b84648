"""The Spark engine against the DuckDB engine on the bundled sample: every table the Spark engine
builds equals the DuckDB engine's (integers and text exactly, numbers to 1e-9 relative).

Both engines run once per test module (one shared Spark session, `tests/conftest.py::spark`),
from the same exports with the same run time; each test compares one table."""

import math
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

pytest.importorskip("pyspark")

from engagement_box import settings  # noqa: E402
from engagement_box.identity.links import build_identity_links  # noqa: E402
from engagement_box.spark import pipeline  # noqa: E402
from engagement_box.spark.tables import SparkTables  # noqa: E402
from engagement_box.staging.contracts import SOURCES  # noqa: E402
from engagement_box.staging.ingestion import ingest_source  # noqa: E402
from engagement_box.value.summary import customer_summary  # noqa: E402

pytestmark = pytest.mark.spark

SAMPLE = settings.REPO_ROOT / "data" / "sample"
NOW = datetime(2026, 12, 1)  # the run's time: the bound of `in_future` in both engines
AS_OF = date(2025, 6, 30)


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
def engines(spark, tmp_path_factory):
    """(DuckDB connection, SparkTables, Spark staging reports) after both engines ran."""
    root = tmp_path_factory.mktemp("parity")
    con = duckdb.connect(str(root / "duck.duckdb"))
    for name in SOURCES:
        ingest_source(con, SAMPLE, name, run_id="parity", now=NOW)
    build_identity_links(con)
    tables = SparkTables(spark, Path(root / "lake"))
    reports = pipeline.stage_all(tables, SAMPLE, "parity", NOW)
    pipeline.build_identity(tables)
    pipeline.reporting_rates(tables, "USD")
    yield con, tables, reports
    con.close()


def duck(con, query: str) -> pl.DataFrame:
    return con.execute(query).pl()


def spark_rows(tables, query: str) -> pl.DataFrame:
    return pl.from_arrow(tables.spark.sql(query).toArrow())


@pytest.mark.parametrize("source", list(SOURCES))
def test_staged_rows_and_reconciliation(engines, source):
    con, tables, reports = engines
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
    report = reports[source]
    assert (report.rows_read, report.rows_staged, report.rows_quarantined) == (
        read,
        staged,
        quarantined,
    )
    assert report.holds


def test_quarantine_rows_and_reasons(engines):
    con, tables, _ = engines
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
    con, tables, _ = engines
    assert_same_rows(
        duck(con, f"SELECT * FROM intermediate.{table}"),
        spark_rows(tables, f"SELECT * FROM intermediate.{table}"),
        key,
    )


def test_orders_resolution(engines):
    con, tables, _ = engines
    assert_same_rows(
        duck(con, "SELECT * FROM intermediate.orders_resolution"),
        spark_rows(tables, "SELECT * FROM intermediate.orders_resolution"),
        ["order_id"],
    )


@pytest.mark.parametrize("start", [None, date(2024, 1, 1)])
def test_customer_summary(engines, start):
    con, tables, _ = engines
    expected = customer_summary(con, AS_OF, start, currency="USD", fx_rates={})
    got = pipeline.customer_summary(tables, AS_OF, ["USD"], [1.0], start)
    assert_same_rows(expected, pl.from_arrow(got.toArrow()), ["customer_id"])
