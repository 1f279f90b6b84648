"""Identity resolution: one customer across the five staged sources.

The rules live in `sql/identity/identity_links.sql` (read it for the full list); in short:

* keys: customer_id as staged; email trimmed and lower-cased; social handles split on ';',
  trimmed, lower-cased, leading '@' removed;
* an email or handle shared by several customer profiles belongs to the customer with the
  earliest signup_date, ties broken by the smallest customer_id;
* orders and reviews resolve by customer_id (when known to `staging.customers`), else by email;
  social actors and targets by handle; referrers by customer_id; referees by referee_customer_id,
  else by referee_email;
* unresolved rows are kept with customer_id NULL and counted in the match rates.

The statements read `staging.*` and write `intermediate.identity_links`. No Dagster import here.
"""

from typing import Literal

import duckdb
import polars as pl

from pipelines.sql import load_sql

# Statements that build the links table, in order (one statement per file).
BUILD_STATEMENTS = ("identity/create_schema", "identity/identity_links")

ResolvedSource = Literal["orders", "reviews", "social", "referrals"]
_RESOLVED_QUERIES: dict[str, str] = {
    "orders": "identity/resolved_orders",
    "reviews": "identity/resolved_reviews",
    "social": "identity/resolved_social",
    "referrals": "identity/resolved_referrals",
}


def build_identity_links(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Build `intermediate.identity_links` from `staging.*` and return the match rates."""
    for name in BUILD_STATEMENTS:
        con.execute(load_sql(name))
    return match_rates(con)


def match_rates(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per source and role: rows, resolved, unresolved, counts per rule and the match rate."""
    return con.execute(load_sql("identity/match_rates")).pl()


def resolved(con: duckdb.DuckDBPyConnection, source: ResolvedSource) -> pl.DataFrame:
    """A staged source joined to its resolved customer ids (the inputs of the metrics).

    orders / reviews: `customer_id`; social: `actor_customer_id`, `target_customer_id`;
    referrals: `referrer_customer_id`, `referee_customer_id`. NULL where unresolved.
    """
    if source not in _RESOLVED_QUERIES:
        raise ValueError(f"unknown source {source!r}; expected one of {sorted(_RESOLVED_QUERIES)}")
    return con.execute(load_sql(_RESOLVED_QUERIES[source])).pl()
