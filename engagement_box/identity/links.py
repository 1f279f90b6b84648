"""Identity resolution: one customer across the five staged sources.

The rules are written once, as DuckDB macros: normalisation in `sql/intermediate/normalization.sql`,
matching in `sql/intermediate/rules.sql`; used by `sql/intermediate/identity_links.sql`
(ownership of shared keys) and every view; in short:

* keys: customer_id as staged; email trimmed and lower-cased; social handles split on ';',
  trimmed, lower-cased, leading '@' removed;
* one customer per person: profiles sharing a normalised email or handle are one person,
  transitively (connected components of the identity graph, `sql/intermediate/customer_merge.sql`
  with `engagement_box/identity/components.py`);
  a key carried by more than `max_profiles_per_key` profiles (ENGAGEMENT_MAX_PROFILES_PER_KEY) is
  a placeholder, not a person's: it merges nothing and resolves nothing (`shared_keys`);
  the person's id is that of their profile with the earliest signup_date, then the smallest
  customer_id, and every key of every one of their profiles resolves to it;
* the person's attributes follow the survivorship rules of
  `sql/intermediate/resolved_customers.sql` (marketing consent: the most restrictive answer);
* orders and reviews resolve by customer_id (when known to `staging.customers`), else by email;
  social actors and targets by handle; referrers by customer_id; referees by referee_customer_id,
  else by referee_email;
* unresolved rows are kept with customer_id NULL and counted in the match rates.

`intermediate.customer_merge` maps every staged profile to its person (`resolved_customer_id`);
`intermediate.resolved_customers` holds one row per person with the merged attributes (what the
metrics' customer lists, the audiences and the customer mart read instead of `staging.customers`).
`intermediate.identity_links` holds one row per source, role and distinct normalised value (with
`source_rows`, how many source rows carry it), not one row per source row: the customers' keys
first (the dictionary the other sources resolve against), then the event sources' values. The
per-row resolution is a set of views, `intermediate.<source>_resolution`, computed on read by
joining each staged row on its normalised key; the links aggregate the same views, so links, match
rates and the metrics' inputs apply one definition of the rules. Match rates count source rows
(sum of `source_rows`), so they mean what they meant when there was one link per row.

The statements read `staging.*` and write `intermediate.customer_merge`,
`intermediate.resolved_customers`, `intermediate.identity_links` and the four views. No Dagster
import here.
"""

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import duckdb
import polars as pl

from engagement_box import incremental, settings
from engagement_box.governance import versions
from engagement_box.identity.components import merge_labels
from engagement_box.sql import load_sql, relation_exists, transaction

# Statements that build the links table, in order (one statement per file).
BUILD_STATEMENTS = (
    "intermediate/create_schema",
    "intermediate/identity_links_table",
    "intermediate/normalization",
    "intermediate/rules",
    "intermediate/erased_placeholder_keys",  # placeholders only with erased carriers counted
    "intermediate/customer_merge_edges",
    "intermediate/customer_merge",  # with the components' labels (`components.merge_labels`)
    "intermediate/identity_links",
    "intermediate/resolved_customers",  # its email skips the placeholders the links found
    "intermediate/orders_resolution",
    "intermediate/reviews_resolution",
    "intermediate/social_resolution",
    "intermediate/referrals_resolution",
    "intermediate/identity_links_sources",
)

MERGE = "intermediate/customer_merge"

ResolvedSource = Literal["orders", "reviews", "social", "referrals"]
_RESOLVED_QUERIES: dict[str, str] = {
    "orders": "intermediate/resolved_orders",
    "reviews": "intermediate/resolved_reviews",
    "social": "intermediate/resolved_social",
    "referrals": "intermediate/resolved_referrals",
}


# The statements that read the placeholder limit ($max_profiles_per_key).
ERASED_KEYS = "intermediate/erased_placeholder_keys"  # and the erasure salt ($salt)
LIMITED_STATEMENTS = (
    ERASED_KEYS,
    "intermediate/customer_merge_edges",
    "intermediate/identity_links",
)
# ERASED_KEYS where no erasure left carriers of a placeholder to count: the same table, empty.
NO_ERASED_KEYS = "intermediate/no_erased_placeholder_keys"


def max_profiles_per_key(given: int | None = None) -> int:
    """`given`, else ENGAGEMENT_MAX_PROFILES_PER_KEY (default 5)."""
    return int(given if given is not None else settings.value("ENGAGEMENT_MAX_PROFILES_PER_KEY"))


# What the links are computed from besides orders (which may grow by new files): a change to any
# of them can move every link (`engagement_box.incremental`).
FIXED_SOURCES = ("customers", "reviews", "social", "referrals")
STATE = incremental.IDENTITY_STATE  # the name its state is recorded under
_COUNT_LINKS = "intermediate/count_identity_links"
# The incremental path, in order: the new orders' links, counted into the links they share,
# then the links only they carry.
INCREMENT_STATEMENTS = (
    "intermediate/count_new_order_links",
    "intermediate/insert_new_order_links",
)


def build_identity_links(
    con: duckdb.DuckDBPyConnection, max_profiles: int | None = None
) -> pl.DataFrame:
    """Build the merge, the merged customers and `intermediate.identity_links` from `staging.*`
    in one transaction (the three always agree; a failed build leaves the previous one), and
    return the match rates. Records what they were built from, for `refresh_identity_links`.
    max_profiles: the placeholder limit (`max_profiles_per_key`)."""
    limit = max_profiles_per_key(max_profiles)
    now = incremental.inputs(con, _settings(limit), fixed=FIXED_SOURCES, identity=False)
    return _build(con, limit, now)


def _settings(limit: int) -> dict:
    return {"max_profiles_per_key": limit}


def links_problem(con: duckdb.DuckDBPyConnection, max_profiles: int | None = None) -> str | None:
    """Why the identity links do not follow the staged files and settings of now (an ingest
    since they were built, a run of some steps that left them out), or None when they do, or
    when no build recorded what it was built from (seeded tables)."""
    built = incremental.state(con, STATE, None)
    if built is None:
        return None
    now = incremental.inputs(
        con, _settings(max_profiles_per_key(max_profiles)), fixed=FIXED_SOURCES, identity=False
    )
    recorded = {k: v for k, v in built.items() if k != "rows"}
    if recorded != json.loads(json.dumps(now, default=str)):
        return (
            "the identity links were built from other staged files, erasures or settings than now's"
        )
    return None


def erased_keys_statement(salt: str | None) -> str:
    """ERASED_KEYS, or NO_ERASED_KEYS when no erased profile's keys are recorded (`salt` None):
    nothing to hash or group then."""
    return ERASED_KEYS if salt is not None else NO_ERASED_KEYS


def build_statements(salt: str | None) -> tuple[str, ...]:
    """BUILD_STATEMENTS, with `erased_keys_statement(salt)` in ERASED_KEYS's place."""
    chosen = erased_keys_statement(salt)
    return tuple(chosen if name == ERASED_KEYS else name for name in BUILD_STATEMENTS)


def statement_values(name: str, limit: int, salt: str | None) -> dict:
    """The bound values of the build statement `name`: the limit, and the salt for ERASED_KEYS."""
    values: dict = {"max_profiles_per_key": limit} if name in LIMITED_STATEMENTS else {}
    if name == ERASED_KEYS:
        values["salt"] = salt
    return values


def _build(con: duckdb.DuckDBPyConnection, limit: int, now: dict) -> pl.DataFrame:
    from engagement_box.governance.erasure import erased_profiles_salt

    with transaction(con):
        salt = erased_profiles_salt(con)
        for name in build_statements(salt):
            if name == MERGE:  # reads the components of the edges the statement before made
                with merge_labels(con):
                    con.execute(load_sql(name))
                continue
            con.execute(load_sql(name), statement_values(name, limit, salt))
        apply_later_consents(con, now.get("consent", []))
        _record(con, now)
    return match_rates(con)


def apply_later_consents(con: duckdb.DuckDBPyConnection, consents: list[list]) -> None:
    """The merged persons' marketing consent where a later customers file changed a profile's
    (`versions.later_consents`: a withdrawal, or a re-consent, in a file whose row is otherwise
    a quarantined repeat). The Spark engine applies them by the same statement
    (`spark/pipeline.py::apply_later_consents`)."""
    if not consents:
        return
    frame = pl.DataFrame(
        [row[:2] for row in consents],
        schema={"customer_id": pl.String, "marketing_consent": pl.Boolean},
        orient="row",
    )
    con.register("later_consents", frame)
    try:
        # the persons' consent by the statement both engines run (the Spark engine's:
        # `spark/pipeline.py::apply_later_consents`)
        con.sql(load_sql("intermediate/later_consent_persons")).create_view("later_consent_persons")
        con.execute(load_sql("intermediate/apply_later_consents"))
    finally:
        con.execute("DROP VIEW IF EXISTS later_consent_persons")
        con.unregister("later_consents")


# The name `consent_of_now` registers the later consents under (its SQL reads it).
LATER_CONSENTS_VIEW = "staged_later_consents"


@contextmanager
def consent_of_now(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """While open, the temporary view `consent_of_now` of `con` (read-only too): per merged
    person, customer_id, email and the marketing consent of now, which the audience files are
    written with (`sql/intermediate/create_consent_of_now.sql`): `intermediate.resolved_customers`
    less every withdrawal staged since the identity step ran (a profile's staged row, or the
    latest later customers file's word: `versions.later_consents`), so a run that fails before
    the identity step still takes a withdrawal to the files. A re-consent after a withdrawal the
    identity step took in waits for its next run (conservative: consent must be given). DuckDB
    engine only. The later consents are the profiles a later file changed (few)."""
    later = pl.DataFrame(
        [(c, v) for c, v, _, _ in versions.later_consents(con)],
        schema={"customer_id": pl.String, "marketing_consent": pl.Boolean},
        orient="row",
    )  # the kept answer while it is the staged rows' (`versions.keep_later_consents`)
    con.register(LATER_CONSENTS_VIEW, later)
    try:
        con.execute(load_sql("intermediate/create_consent_of_now"))
        try:
            yield
        finally:
            con.execute(load_sql("intermediate/drop_consent_of_now"))
    finally:
        con.unregister(LATER_CONSENTS_VIEW)


def consent_digest(con: duckdb.DuckDBPyConnection) -> dict:
    """{"consenting", "digest"}: how many merged persons consent to marketing now, and an
    order-free digest of their ids, as the audience files record the consent they were written
    with; inside an open `consent_of_now`."""
    consenting, digest = con.execute(load_sql("intermediate/consenting_digest")).fetchone()
    return {"consenting": int(consenting), "digest": str(digest)}


def live_consent(con: duckdb.DuckDBPyConnection) -> dict | None:
    """`consent_digest` of the consent of now (`consent_of_now`: the identity step's answer
    less every withdrawal staged since, in place or in a later customers file), or None before
    the identity step merged anyone."""
    if not relation_exists(con, "intermediate", "resolved_customers"):
        return None
    with consent_of_now(con):
        return consent_digest(con)


def refresh_identity_links(
    con: duckdb.DuckDBPyConnection, max_profiles: int | None = None
) -> tuple[pl.DataFrame, incremental.Plan]:
    """`build_identity_links`, or, when the only change since the last build is new orders files
    (`engagement_box.incremental.plan`), the links of the new orders alone, added in one
    transaction: the merge, the merged customers and the other sources' links depend on
    nothing that changed, and an order's link depends only on its own row and the customers.
    A new placeholder limit rebuilds everything. Returns the match rates and the path taken."""
    limit = max_profiles_per_key(max_profiles)
    now = incremental.inputs(con, _settings(limit), fixed=FIXED_SOURCES, identity=False)
    plan = incremental.plan(con, STATE, None, now, rows=load_sql(_COUNT_LINKS))
    if not plan.incremental:
        return _build(con, limit, now), plan
    with transaction(con):
        con.execute(load_sql("intermediate/new_order_links"), {"new_files": list(plan.new_files)})
        for name in INCREMENT_STATEMENTS:
            con.execute(load_sql(name))
        _record(con, now)
    return match_rates(con), plan


def _record(con: duckdb.DuckDBPyConnection, now: dict) -> None:
    if not now["files"]:
        return  # staged without a record of files (e.g. a test's seeded tables): no state
    rows = con.execute(load_sql(_COUNT_LINKS)).fetchone()[0]
    for statement, parameters in incremental.record(con, STATE, None, now, rows):
        con.execute(statement, parameters)


def merge_summary(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """profiles, people, profiles_merged_into_another, people_with_several_profiles and
    most_profiles_of_one_person: what the merge into one customer per person did."""
    relation = con.execute(load_sql("intermediate/merge_summary"))
    names = [d[0] for d in relation.description]
    row = relation.fetchone()
    assert row is not None
    return {name: int(value) for name, value in zip(names, row, strict=True)}


def shared_keys(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Per key type ('email', 'handle') with placeholders: how many keys are carried by more
    profiles than the limit, and the most profiles one of them is carried by. No key's value:
    the values are personal data, and this goes into Dagster's event log."""
    relation = con.execute(load_sql("intermediate/shared_keys"))
    names = [d[0] for d in relation.description]
    return [dict(zip(names, row, strict=True)) for row in relation.fetchall()]


def shared_keys_on_spark(spark) -> list[dict]:
    """`shared_keys` of the Spark engine's identity links (the same file, as Spark SQL)."""
    from engagement_box.spark.sql import load_spark_sql  # sqlglot: the spark extra only

    (query,) = load_spark_sql("intermediate/shared_keys")
    return [row.asDict() for row in spark.sql(query.sql).collect()]


def match_rates(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per source and role: rows, resolved, unresolved, counts per rule, the match rate (all
    counted over source rows) and distinct_values (the number of link rows)."""
    return con.execute(load_sql("intermediate/match_rates")).pl()


def resolved(
    con: duckdb.DuckDBPyConnection,
    source: ResolvedSource,
    *,
    columns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """A staged source joined to its resolved customer ids (the inputs of the metrics).

    orders / reviews: `customer_id`; social: `actor_customer_id`, `target_customer_id`;
    referrals: `referrer_customer_id`, `referee_customer_id`. NULL where unresolved.
    columns: only these output columns (names checked against the query's own columns); the
    projection reaches the view, so unread columns are never scanned or transferred.
    """
    if source not in _RESOLVED_QUERIES:
        raise ValueError(f"unknown source {source!r}; expected one of {sorted(_RESOLVED_QUERIES)}")
    relation = con.sql(load_sql(_RESOLVED_QUERIES[source]))
    if columns is None:
        return relation.pl()
    unknown = [c for c in columns if c not in relation.columns]
    if unknown:
        raise ValueError(f"unknown columns {unknown} for {source!r}; expected {relation.columns}")
    return relation.select(*(duckdb.ColumnExpression(c) for c in columns)).pl()
