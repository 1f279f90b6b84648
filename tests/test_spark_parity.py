"""The Spark engine against the DuckDB engine on the bundled sample: every table the Spark engine
builds equals the DuckDB engine's (integers and text exactly, numbers to 1e-9 relative).

Both engines run once per test module (one shared Spark session, `tests/conftest.py::spark`),
from the same exports with the same run time; each test compares one table. The DuckDB side of
the value marts is the DuckDB engine's own assets (`assets/value.py`), run on the same staging.
"""

import json
import math
import time
from datetime import date, datetime
from decimal import Decimal

import dagster as dg
import duckdb
import polars as pl
import pytest

from assets.spark import spark_assets
from assets.value import value_assets
from engagement_box import dictionary, settings
from engagement_box.identity.links import build_identity_links
from engagement_box.spark import lake, pipeline
from engagement_box.spark.tables import SparkTables
from engagement_box.staging.contracts import SOURCES
from engagement_box.staging.ingestion import ingest_source
from engagement_box.value.summary import customer_summary
from pipelines.resources import (
    ExportsResource,
    LakeResource,
    ModelSettings,
    SparkEngine,
    Warehouse,
)

pytestmark = pytest.mark.spark

SAMPLE = settings.REPO_ROOT / "data" / "sample"
NOW = datetime(2026, 12, 1)  # the run's time: the bound of `in_future` in both engines
AS_OF = date(2025, 6, 30)
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


def materialize_duckdb_value_marts(database, as_of: date) -> None:
    """The DuckDB engine's value assets (`assets/value.py`) on the working database `database`
    (staged and resolved already), for the month of `as_of` with the as-of pinned."""
    result = dg.materialize(
        value_assets,
        resources={
            "warehouse": Warehouse(
                database=str(database.parent / "published.duckdb"), working_database=str(database)
            ),
            "model_settings": ModelSettings(as_of=as_of.isoformat()),
        },
        partition_key=as_of.replace(day=1).isoformat(),
    )
    assert result.success


def run_both_engines(root, exports, as_of: date):
    """(DuckDB working database, the Spark run's result, lake) after both engines ran on
    `exports` with the same run time: the DuckDB engine's staging and identity functions and
    its value assets (`assets/value.py`), and the Spark engine's assets (`assets/spark.py`)."""
    started = time.perf_counter()
    database = root / "duck.duckdb"
    con = duckdb.connect(str(database))
    for name in SOURCES:
        ingest_source(con, exports, name, run_id="parity", now=NOW)
    build_identity_links(con)
    con.close()
    materialize_duckdb_value_marts(database, as_of)
    print(f"duckdb engine: {time.perf_counter() - started:.1f} s")
    lake_dir = root / "lake"
    result = dg.materialize(
        spark_assets,
        resources={
            "spark": SparkEngine(master="local[2]", shuffle_partitions=2),
            "lake_dir": LakeResource(lake_dir=str(lake_dir)),
            "exports": ExportsResource(data_dir=str(exports)),
            "model_settings": ModelSettings(as_of=as_of.isoformat()),
        },
    )
    assert result.success
    print(f"spark engine: {time.perf_counter() - started:.1f} s")
    return database, result, lake_dir


@pytest.fixture(scope="module")
def engines(spark, tmp_path_factory):
    """(DuckDB connection, SparkTables, Spark staging reports, lake) after both engines ran on
    the bundled sample (`run_both_engines`)."""
    database, result, lake_dir = run_both_engines(tmp_path_factory.mktemp("parity"), SAMPLE, AS_OF)
    con = duckdb.connect(str(database))
    (staged,) = [
        event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(["spark", "staging"])
    ]
    reports = {
        name: tuple(
            staged[f"{name}_{kind}"].value
            for kind in ("rows_read", "rows_staged", "rows_quarantined")
        )
        for name in SOURCES
    }
    tables = SparkTables(spark, lake_dir)
    pipeline.restore(tables)
    pipeline.reporting_rates(tables, "USD")
    yield con, tables, reports, lake_dir
    con.close()


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
