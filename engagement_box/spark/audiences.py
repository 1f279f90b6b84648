"""The audiences on Spark: who gets which play, the rows of the DuckDB engine's audience files.

`activation/audiences.py::build_audiences`, the DuckDB engine's own code, runs per Arrow batch of
one row per consenting person (`intermediate.resolved_customers`: the merged person's email and
consent) with their RFM segment and CLV x CRV quadrant of the as-of (`work.customer_rfm`,
`work.engagement_value`). Each customer's audiences depend on their row alone, so no population
statistic is needed. The rows are kept as `work.audiences` and published in the run's version
with the other marts; the files under ENGAGEMENT_AUDIENCE_DIR are written from the published
version (`export_files`), one audience at a time. No Dagster import here.
"""

from datetime import date
from pathlib import Path

import polars as pl

from engagement_box.activation import audiences as activation
from engagement_box.spark.engagement import per_batch

MART = "audiences"
SCHEMA = ", ".join(f"{c} string" for c in activation.AUDIENCE_COLUMNS)


def audiences(spark, as_of: date):
    """The audience rows of the as-of (customer_id, email, audience_kind, audience, play) as a
    Spark DataFrame, from the lake's tables registered in `spark`."""
    from pyspark.sql import functions as F

    def of_as_of(table: str, column: str):
        return (
            spark.table(f"work.{table}")
            .filter(F.col("as_of") == F.lit(as_of))
            .select("customer_id", column)
        )

    people = (
        spark.table("intermediate.resolved_customers")
        .filter(F.coalesce(F.col("marketing_consent"), F.lit(False)))
        .select("customer_id", "email", "marketing_consent")
        .join(of_as_of("customer_rfm", "segment"), "customer_id", "left")
        .join(of_as_of("engagement_value", "quadrant"), "customer_id", "left")
    )

    def build(batch: pl.DataFrame) -> pl.DataFrame:
        return activation.build_audiences(
            batch.select("customer_id", "email", "marketing_consent"),
            segments=batch.select("customer_id", "segment"),
            quadrants=batch.select("customer_id", "quadrant"),
        )

    return per_batch(people, build, SCHEMA)


def export_files(folder: Path, out_dir: Path) -> dict[str, dict]:
    """The audience files (`activation.export_audiences`: CSV neutralised, Parquet) from a
    published version's `audiences` folder, sorted as the DuckDB engine's. One audience's rows
    are in memory at a time."""
    rows = pl.scan_parquet(Path(folder) / "*.parquet")
    names = (
        rows.select("audience_kind", "audience").unique().sort("audience_kind", "audience")
    ).collect()
    parts = (
        rows.filter((pl.col("audience_kind") == kind) & (pl.col("audience") == audience))
        .select(activation.AUDIENCE_COLUMNS)
        .sort("customer_id")
        .collect()
        for kind, audience in names.iter_rows()
    )
    return activation.export_audience_parts(parts, out_dir)
