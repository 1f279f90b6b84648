"""Identity asset: one customer per person across the five sources (`intermediate.identity_links`).

The rules are DuckDB macros in `sql/intermediate/rules.sql`; `engagement_box.identity.links` merges
the profiles of one person (`intermediate.customer_merge`, `intermediate.resolved_customers`) and
builds the links and the per-row resolution views every metric reads (orders, reviews, social,
referrals).
"""

import dagster as dg

from assets.metadata import markdown_table, table_metadata
from assets.staging import staging_key
from engagement_box.identity import links as identity
from pipelines.resources import Warehouse

IDENTITY_KEY = dg.AssetKey(["intermediate", "identity_links"])


@dg.asset(
    key=IDENTITY_KEY,
    group_name="identity",
    kinds={"duckdb"},
    deps=[staging_key(s) for s in ("customers", "orders", "reviews", "social", "referrals")],
)
def identity_links(warehouse: Warehouse) -> dg.MaterializeResult:
    """One customer per person: profiles merged, ids, emails and handles linked to the person."""
    with warehouse.get_connection() as con:
        rates, plan = identity.refresh_identity_links(con)
        metadata = table_metadata(con, "intermediate", "identity_links")
        metadata.update(plan.metadata())
        merge = identity.merge_summary(con)
    metadata["match_rates"] = dg.MetadataValue.md(markdown_table(rates))
    # One customer per person: profiles sharing an email or handle merged (customer_merge).
    metadata.update({f"merge_{name}": value for name, value in merge.items()})
    for row in rates.iter_rows(named=True):
        metadata[f"match_rate_{row['source']}_{row['role']}"] = float(row["match_rate"] or 0.0)
    return dg.MaterializeResult(metadata=metadata)


identity_assets = [identity_links]
