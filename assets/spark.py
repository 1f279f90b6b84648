"""The Spark engine's assets (ENGAGEMENT_ENGINE=spark; `pipelines/definitions.py` picks them).

Thin: each calls `engagement_box/spark/`, which runs the same sql/ files and contract code as
the DuckDB engine on Spark, and returns metadata. Working tables are Parquet under
ENGAGEMENT_LAKE_DIR/tables; the marts are published there as versions (`engagement_box/spark/
lake.py`). Not partitioned: a run models up to ENGAGEMENT_AS_OF, else the last completed order.
"""

import datetime as dt
import json

import dagster as dg

from assets.metadata import run_time
from engagement_box.spark import lake, pipeline
from engagement_box.spark.tables import SparkTables
from pipelines.resources import (
    ExportsResource,
    LakeResource,
    ModelSettings,
    SparkEngine,
)

STAGED_KEY = dg.AssetKey(["spark", "staging"])
IDENTITY_KEY = dg.AssetKey(["spark", "identity_links"])
MARTS_KEY = dg.AssetKey(["spark", "marts"])


@dg.asset(
    key=STAGED_KEY,
    group_name="spark",
    kinds={"spark", "parquet"},
    check_specs=[dg.AssetCheckSpec("rows_reconcile", asset=STAGED_KEY, blocking=True)],
)
def spark_staging(
    context: dg.AssetExecutionContext,
    spark: SparkEngine,
    lake_dir: LakeResource,
    exports: ExportsResource,
) -> dg.MaterializeResult:
    """Every export validated by the contracts on Spark; good rows staged, bad ones quarantined."""
    tables = SparkTables(spark.session(), lake_dir.path)
    reports = pipeline.stage_all(tables, exports.path, context.run.run_id, run_time(context))
    metadata: dict = {}
    for name, report in reports.items():
        metadata[f"{name}_rows_read"] = report.rows_read
        metadata[f"{name}_rows_staged"] = report.rows_staged
        metadata[f"{name}_rows_quarantined"] = report.rows_quarantined
        metadata[f"{name}_quarantine_by_reason"] = dg.MetadataValue.json(
            report.quarantine_by_reason
        )
    holds = all(r.holds for r in reports.values())
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="rows_reconcile",
                passed=holds,
                metadata={
                    n: f"{r.rows_read} = {r.rows_staged} + {r.rows_quarantined}"
                    for n, r in reports.items()
                },
            )
        ],
    )


@dg.asset(key=IDENTITY_KEY, group_name="spark", kinds={"spark", "parquet"}, deps=[STAGED_KEY])
def spark_identity_links(spark: SparkEngine, lake_dir: LakeResource) -> dg.MaterializeResult:
    """One customer per person, by the identity rules of sql/intermediate/, on Spark."""
    tables = SparkTables(spark.session(), lake_dir.path)
    tables.restore()
    pipeline.build_identity(tables)
    counts = {
        name: tables.spark.table(f"intermediate.{name}").count()
        for name in ("customer_merge", "resolved_customers", "identity_links")
    }
    return dg.MaterializeResult(metadata={f"{k}_rows": v for k, v in counts.items()})


@dg.asset(key=MARTS_KEY, group_name="spark", kinds={"spark", "parquet"}, deps=[IDENTITY_KEY])
def spark_marts(
    context: dg.AssetExecutionContext,
    spark: SparkEngine,
    lake_dir: LakeResource,
    model_settings: ModelSettings,
) -> dg.MaterializeResult:
    """The value marts (RFM, values, fits, validation, cohorts), published as one version."""
    tables = SparkTables(spark.session(), lake_dir.path)
    pipeline.restore(tables)
    cfg = model_settings.resolved()
    if cfg.time_unit != "D":
        raise dg.Failure("the Spark engine models in days: set ENGAGEMENT_TIME_UNIT=D")
    pinned = dt.date.fromisoformat(str(cfg.as_of)) if cfg.as_of else None
    as_of = pipeline.as_of_date(tables, pinned, run_time(context).date())
    marts, info = pipeline.value_marts(
        tables,
        as_of,
        cfg.currency,
        json.loads(cfg.fx_rates_json or "{}"),
        calibration_end=dt.date.fromisoformat(str(cfg.calibration_end))
        if cfg.calibration_end
        else None,
        holdout_days=cfg.holdout_days,
        purchase_model=cfg.purchase_model,
        horizon_months=cfg.clv_horizon_months,
        monthly_discount_rate=cfg.monthly_discount_rate,
        margin=cfg.margin,
        penalizer=cfg.penalizer,
    )
    record = lake.publish(lake_dir.path, marts, {"as_of": as_of.isoformat(), "engine": "spark"})
    return dg.MaterializeResult(
        metadata={
            "snapshot_id": record["snapshot_id"],
            "as_of": as_of.isoformat(),
            "lake": str(lake_dir.path),
            **{f"fit_{k}": v for k, v in info["fit_rows"].items()},
            "bgnbd": dg.MetadataValue.json(info["bgnbd"].params),
            "gamma_gamma": dg.MetadataValue.json(info["gamma_gamma"].params),
        }
    )


spark_assets = [spark_staging, spark_identity_links, spark_marts]

spark_job = dg.define_asset_job(
    name="spark_pipeline",
    selection=dg.AssetSelection.assets(*spark_assets),
    description="Stage, resolve identity, model and publish the marts on Spark.",
)
