"""Engagement assets: identity links, the five engagement metrics, personas, audiences.

The maths lives in `engagement_box.identity` (+ `sql/identity/`), `engagement_box.engagement`
and `engagement_box.activation`; plots in `engagement_box.reports`.
"""

import datetime as dt
import re
import shutil

import dagster as dg
import polars as pl

from assets.metadata import markdown_table, table_metadata
from assets.staging import staging_key
from assets.value import png_markdown, read_window, work_key
from engagement_box import reports
from engagement_box.activation import audiences
from engagement_box.engagement import personas
from engagement_box.engagement.metrics import engagement_values
from engagement_box.frames import read_table, write_frame
from engagement_box.identity import links as identity
from engagement_box.value import rfm
from pipelines.partitions import monthly_as_of
from pipelines.resources import EngagementConfig, Warehouse

GROUP = "engagement"
IDENTITY_KEY = dg.AssetKey(["intermediate", "identity_links"])
METRIC_COLUMNS = ("clv", "crv", "civ", "ckv")


@dg.asset(
    key=IDENTITY_KEY,
    group_name=GROUP,
    kinds={"duckdb"},
    deps=[staging_key(s) for s in ("customers", "orders", "reviews", "social", "referrals")],
)
def identity_links(warehouse: Warehouse) -> dg.MaterializeResult:
    """One customer across sources: ids, normalized emails and handles linked to a customer_id."""
    with warehouse.get_connection() as con:
        rates = identity.build_identity_links(con)
        metadata = table_metadata(con, "intermediate", "identity_links")
    metadata["match_rates"] = dg.MetadataValue.md(markdown_table(rates))
    for row in rates.iter_rows(named=True):
        metadata[f"match_rate_{row['source']}_{row['role']}"] = float(row["match_rate"] or 0.0)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key=work_key("engagement_value"),
    partitions_def=monthly_as_of,
    group_name=GROUP,
    kinds={"duckdb", "scipy"},
    deps=[IDENTITY_KEY, work_key("customer_value"), staging_key("customers")],
    check_specs=[
        dg.AssetCheckSpec(
            "cev_is_the_sum",
            asset=work_key("engagement_value"),
            blocking=True,
            description="CEV = CLV + CRV + CIV + CKV for every customer, all values finite.",
        )
    ],
)
def engagement_value(
    warehouse: Warehouse, engagement_config: EngagementConfig
) -> dg.MaterializeResult:
    """CLV, CRV, CIV, CKV and CEV per customer, social points per platform, CLV x CRV quadrant."""
    settings = engagement_config.to_settings()
    with warehouse.get_connection() as con:
        window = read_window(con)
        clv = con.execute("SELECT customer_id, clv FROM work.customer_value").pl()
        customers = con.execute(
            "SELECT customer_id FROM staging.customers WHERE signup_date <= $as_of "
            "UNION SELECT customer_id FROM work.customer_value",
            {"as_of": window["as_of"]},
        ).pl()
        # Only what was known at the as-of date: a past month's run ignores later activity.
        until = dt.datetime.combine(window["as_of"], dt.time.max)
        values = engagement_values(
            clv,
            identity.resolved(con, "reviews").filter(pl.col("created_at") <= until),
            identity.resolved(con, "social").filter(pl.col("occurred_at") <= until),
            identity.resolved(con, "referrals")
            .filter(pl.col("referred_at") <= until)
            .with_columns(  # converted after the as-of date: not converted yet at that date
                pl.when(pl.col("converted_at") <= until)
                .then(pl.col("converted_at"))
                .alias("converted_at")
            ),
            settings,
            as_of=window["as_of"],
            customers=customers,
        ).with_columns(pl.lit(window["as_of"]).alias("as_of"))
        write_frame(con, "work", "engagement_value", values)
        metadata = table_metadata(con, "work", "engagement_value")

    numeric = [c for c, t in values.schema.items() if t.is_numeric()]
    non_finite = {
        c: int((~values[c].cast(pl.Float64).is_finite()).sum())
        for c in numeric
        if (~values[c].cast(pl.Float64).is_finite()).any()
    }
    gap = (values["cev"] - sum(values[c] for c in METRIC_COLUMNS)).abs().max() or 0.0
    metadata.update(
        {
            **{f"total_{c}": float(values[c].sum()) for c in (*METRIC_COLUMNS, "cev")},
            "quadrants": dg.MetadataValue.json(
                dict(values.group_by("quadrant").len().sort("quadrant").iter_rows())
            ),
            "cev_composition": png_markdown(reports.cev_composition_png(values), "CEV composition"),
            "clv_distribution": png_markdown(
                reports.clv_distribution_png(values["clv"].to_numpy()), "CLV distribution"
            ),
            "quadrant_map": png_markdown(reports.quadrant_map_png(values), "CLV x CRV quadrants"),
        }
    )
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="cev_is_the_sum",
                passed=not non_finite
                and float(gap) <= 1e-6 * max(1.0, float(values["cev"].abs().max() or 0)),
                metadata={
                    "max_abs_gap": float(gap),
                    "non_finite_by_column": dg.MetadataValue.json(non_finite),
                },
            )
        ],
    )


@dg.asset(
    key=work_key("customer_persona"),
    partitions_def=monthly_as_of,
    group_name=GROUP,
    kinds={"duckdb", "scikitlearn"},
    deps=[work_key("customer_rfm"), work_key("engagement_value")],
)
def customer_persona(
    context: dg.AssetExecutionContext, warehouse: Warehouse
) -> dg.MaterializeResult:
    """Behavioural clusters (k-means on standardized RFM, value and engagement features)."""
    with warehouse.get_connection() as con:
        features = con.execute(
            "SELECT e.customer_id, r.recency_days, r.frequency, r.monetary, "
            "e.clv, e.crv, e.civ, e.ckv, e.social_points "
            "FROM work.engagement_value AS e "
            "JOIN work.customer_rfm AS r USING (customer_id) "
            "WHERE r.segment <> $prospect ORDER BY e.customer_id",
            {"prospect": rfm.PROSPECT},
        ).pl()
        result = personas.build_personas(features)
        write_frame(con, "work", "customer_persona", result.assignments)
        write_frame(con, "work", "persona_profile", result.profiles)
        metadata = table_metadata(con, "work", "customer_persona")
    metadata.update(
        {
            "k": result.k,
            "silhouette_by_k": dg.MetadataValue.json(
                {str(k): v for k, v in result.silhouette_by_k.items()}
            ),
            "profiles": dg.MetadataValue.md(
                markdown_table(
                    result.profiles.select(
                        [c for c in result.profiles.columns if not c.startswith("z_")]
                    )
                )
            ),
        }
    )
    return dg.MaterializeResult(metadata=metadata)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


@dg.asset(
    key=dg.AssetKey(["activation", "audiences"]),
    partitions_def=monthly_as_of,
    group_name="activation",
    kinds={"csv", "parquet"},
    deps=[dg.AssetKey(["marts", "customer_rfm"]), dg.AssetKey(["marts", "engagement_value"])],
)
def audience_exports(
    warehouse: Warehouse, engagement_config: EngagementConfig
) -> dg.MaterializeResult:
    """Consenting customers per RFM segment and quadrant, with the play to run (CSV, Parquet)."""
    with warehouse.get_connection() as con:
        customers = con.execute(
            "SELECT customer_id, email, marketing_consent FROM staging.customers"
        ).pl()
        frame = audiences.build_audiences(
            customers,
            segments=read_table(con, "marts", "customer_rfm").select("customer_id", "segment"),
            quadrants=read_table(con, "marts", "engagement_value").select(
                "customer_id", "quadrant"
            ),
        )
        snapshot = con.execute("SELECT max(snapshot_id) FROM marts.snapshots").fetchone()
    out = engagement_config.audience_path
    # Rebuilt whole each time: a customer who withdrew consent or was erased leaves every file.
    if out.exists():
        shutil.rmtree(out)
    files = {}
    for (kind, audience), part in frame.group_by("audience_kind", "audience", maintain_order=True):
        paths = audiences.write_audiences(part, out / str(kind), name=_slug(str(audience)))
        files[f"{kind}/{audience}"] = {"rows": part.height, **{k: str(v) for k, v in paths.items()}}
    sizes = frame.group_by("audience_kind", "audience").len().sort("audience_kind", "audience")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": frame.height,
            "snapshot_id": int(snapshot[0]) if snapshot and snapshot[0] else 0,
            "directory": dg.MetadataValue.path(str(out)),
            "files": dg.MetadataValue.json(files),
            "audience_sizes": dg.MetadataValue.md(markdown_table(sizes)),
            "customers_in_any_audience": int(frame["customer_id"].n_unique())
            if frame.height
            else 0,
        }
    )


engagement_assets = [identity_links, engagement_value, customer_persona, audience_exports]
