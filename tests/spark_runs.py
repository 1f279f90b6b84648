"""A retailer run on both engines, from the same exports with the same run time: the DuckDB
engine's staging and identity functions and its value assets (`assets/value.py`), and the Spark
engine's Dagster assets (`assets/spark.py`). The bundled sample runs once per test session
(`tests/conftest.py::spark_run`); the 20k-customer parity test runs its own."""

import contextlib
import os
import time
from datetime import UTC, date
from pathlib import Path

import dagster as dg
import duckdb

from assets.spark import lake_tables, spark_assets
from assets.value import value_assets
from engagement_box import settings
from engagement_box.identity.links import build_identity_links
from engagement_box.spark import pipeline
from engagement_box.staging.contracts import SOURCES
from engagement_box.staging.ingestion import ingest_source
from pipelines.resources import (
    EngagementConfig,
    ExportsResource,
    LakeResource,
    ModelSettings,
    RetentionPolicy,
    SparkEngine,
    Warehouse,
)

SAMPLE = settings.REPO_ROOT / "data" / "sample"
AS_OF = date(2025, 6, 30)


def materialize_duckdb_value_marts(database: Path, as_of: date) -> None:
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


@contextlib.contextmanager
def environment(name: str, value: str):
    """The environment variable `name` set to `value` inside the block, as it was after."""
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            del os.environ[name]
        else:
            os.environ[name] = saved


def both_engines(spark, root: Path, exports: Path = SAMPLE, as_of: date = AS_OF):
    """(DuckDB connection, SparkTables, Spark staging reports, lake, Spark run result). The
    Spark run's audience files are in `root / "audiences"`.

    The Spark run goes first: its staging quarantines what is later than the run's creation
    time, so the DuckDB engine stages with that same time, whatever the clock says (the sample
    runs to 2026-06-30: on an earlier day its last months are in the future for both)."""
    started = time.perf_counter()
    lake_dir = root / "lake"
    # The Spark staging reads the erasure register beside the working database the settings
    # name: this run's own in root (there is none), never a warehouse of the machine's.
    with (
        environment("ENGAGEMENT_WORKING_DB", str(root / "engagement.working.duckdb")),
        dg.DagsterInstance.ephemeral() as instance,
    ):
        result = dg.materialize(
            spark_assets,
            resources={
                "spark": SparkEngine(master="local[2]", shuffle_partitions=2),
                "lake_dir": LakeResource(lake_dir=str(lake_dir)),
                "exports": ExportsResource(data_dir=str(exports)),
                "model_settings": ModelSettings(as_of=as_of.isoformat()),
                "engagement_config": EngagementConfig(audience_dir=str(root / "audiences")),
                "retention": RetentionPolicy(),
            },
            instance=instance,
        )
        assert result.success
        created = instance.get_run_record_by_id(result.run_id).create_timestamp
    now = created.astimezone(UTC).replace(tzinfo=None)  # as assets/metadata.py::run_time
    print(f"spark engine: {time.perf_counter() - started:.1f} s")
    database = root / "duck.duckdb"
    con = duckdb.connect(str(database))
    for name in SOURCES:
        ingest_source(con, exports, name, run_id="parity", now=now)
    build_identity_links(con)
    con.close()
    materialize_duckdb_value_marts(database, as_of)
    con = duckdb.connect(str(database))
    print(f"duckdb engine: {time.perf_counter() - started:.1f} s")
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
    # the session holds the run's tables already (registered again only if it does not)
    tables = lake_tables(spark, lake_dir)
    pipeline.reporting_rates(tables, "USD")
    return con, tables, reports, lake_dir, result
