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
from pipelines.resources import EngagementConfig, Warehouse

IDENTITY_KEY = dg.AssetKey(["intermediate", "identity_links"])
PLACEHOLDER_CHECK = "no_placeholder_keys"


def placeholder_check_spec(key: dg.AssetKey) -> dg.AssetCheckSpec:
    """The check that warns of placeholder keys, on the identity asset of either engine."""
    return dg.AssetCheckSpec(
        PLACEHOLDER_CHECK,
        asset=key,
        description=(
            "No email or social handle is carried by more customer profiles than "
            "ENGAGEMENT_MAX_PROFILES_PER_KEY. One that is (a shop's noemail@..., its own "
            "handle) merged no profiles and resolves nothing; warns, the run goes on."
        ),
    )


def placeholder_metadata(placeholders: list[dict], limit: int) -> dict:
    """The limit and how many placeholder emails and handles there are (counts only)."""
    found = {row["key_type"]: int(row["keys"]) for row in placeholders}
    return {
        "max_profiles_per_key": limit,
        **{f"placeholder_{kind}s": found.get(kind, 0) for kind in ("email", "handle")},
    }


def placeholder_check(placeholders: list[dict], limit: int, where: str) -> dg.AssetCheckResult:
    """Warns with how many keys are placeholders and the most profiles on one; never a key's
    value (personal data, and this goes into Dagster's event log). `where`: the database
    whose `intermediate.identity_links` lists them."""
    said = "; ".join(
        f"{row['keys']:,} {row['key_type']}(s) carried by more than {limit} profiles (at most "
        f"{row['most_profiles']:,} staged on one; profiles erased from a key still count on it)"
        for row in placeholders
    )
    return dg.AssetCheckResult(
        check_name=PLACEHOLDER_CHECK,
        passed=not placeholders,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{said}: not one person's, so they merged no profiles and resolve nothing. Rows "
            f"carrying only such a key stay unresolved. The keys are in {where}: "
            "intermediate.identity_links where source = 'customers' and customer_id is null. "
            "Raise ENGAGEMENT_MAX_PROFILES_PER_KEY if they are people"
            if placeholders
            else f"no email or handle is carried by more than {limit} profiles"
        ),
        metadata={"max_profiles_per_key": limit},
    )


@dg.asset(
    key=IDENTITY_KEY,
    group_name="identity",
    kinds={"duckdb"},
    deps=[staging_key(s) for s in ("customers", "orders", "reviews", "social", "referrals")],
    check_specs=[placeholder_check_spec(IDENTITY_KEY)],
)
def identity_links(
    warehouse: Warehouse, engagement_config: EngagementConfig
) -> dg.MaterializeResult:
    """One customer per person: profiles merged, ids, emails and handles linked to the person."""
    limit = identity.max_profiles_per_key(engagement_config.setting("max_profiles_per_key"))
    with warehouse.get_connection() as con:
        rates, plan = identity.refresh_identity_links(con, limit)
        metadata = table_metadata(con, "intermediate", "identity_links")
        metadata.update(plan.metadata())
        merge = identity.merge_summary(con)
        placeholders = identity.shared_keys(con)
    metadata["match_rates"] = dg.MetadataValue.md(markdown_table(rates))
    # One customer per person: profiles sharing an email or handle merged (customer_merge).
    metadata.update({f"merge_{name}": value for name, value in merge.items()})
    for row in rates.iter_rows(named=True):
        metadata[f"match_rate_{row['source']}_{row['role']}"] = float(row["match_rate"] or 0.0)
    metadata.update(placeholder_metadata(placeholders, limit))
    check = placeholder_check(
        placeholders,
        limit,
        where="the working database (ENGAGEMENT_WORKING_DB, not the analysts' file)",
    )
    return dg.MaterializeResult(metadata=metadata, check_results=[check])


identity_assets = [identity_links]
