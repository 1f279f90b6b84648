"""The engagement metrics beyond CLV: social points, CRV, CIV, CKV, CEV and the CLV x CRV quadrants.

The asset `assets/engagement.py::engagement_value` computes the CLV-free parts
(`engagement_parts`: CKV, social points, the influence network), or carries them from an
earlier as-of, then the values from them and the CLVs (`engagement_values_from_parts`);
`engagement_values` does both at once (the tests and the Spark parity check call it).
Each metric lives in a module of its own: `referral` (CRV), `influence` (CIV), `knowledge`
(CKV), `quadrants`; the settings in `config`. docs/METRICS.md defines them.
Everything is vectorised (polars for the tables, scipy.sparse for the influence network).
No Dagster import here.

Inputs are polars frames whose customer ids are already resolved
(see `engagement_box.identity.links`):

* clv:       customer_id, clv (one row per buyer: customers with a CLV from the purchase models)
* unvalued:  the customers whose completed orders are all left out of the purchase models for
             want of an FX rate (no CLV, and no RFM row: `sql/work/customers_without_rate.sql`):
             their clv, cev and quadrant are NULL, not 0 and CEV Misers (`finish_values`)
* reviews:   customer_id, helpful_votes, verified_purchase
* social:    actor_customer_id, target_customer_id, event_type, platform
* referrals: referral_id, referrer_customer_id, referee_customer_id, referred_at, converted_at,
             referrer_reward, referee_reward, would_have_joined_anyway
"""

from dataclasses import dataclass
from datetime import date, datetime

import polars as pl

from engagement_box.engagement.config import DEFAULT_SOCIAL_POINTS, EngagementSettings
from engagement_box.engagement.influence import (
    customer_influence_value,
    influence_from_edges,
    influence_matrix,
    network_among,
    reaction_edges,
)
from engagement_box.engagement.knowledge import customer_knowledge_value
from engagement_box.engagement.quadrants import QUADRANT_PLAYS, QUADRANTS, assign_quadrants
from engagement_box.engagement.referral import (
    ReferralModel,
    as_of_end,
    credited_referrals,
    customer_referral_value,
    customer_start,
    with_referee_since,
)
from engagement_box.staging.contracts import SOCIAL_PLATFORMS

__all__ = [
    "DEFAULT_SOCIAL_POINTS",
    "QUADRANTS",
    "QUADRANT_PLAYS",
    "EngagementParts",
    "EngagementSettings",
    "assign_quadrants",
    "credited_referrals",
    "customer_influence_value",
    "customer_knowledge_value",
    "engagement_parts",
    "engagement_values",
    "engagement_values_from_parts",
    "influence_matrix",
    "social_points",
    "unvalued_customers",
]

# --------------------------------------------------------------------------------------------
# Social points
# --------------------------------------------------------------------------------------------


def _points_expr(settings: EngagementSettings) -> pl.Expr:
    default = pl.col("event_type").replace_strict(
        dict(settings.social_points), default=0.0, return_dtype=pl.Float64
    )
    expr = default
    for platform, points in settings.social_points_by_platform.items():
        override = pl.col("event_type").replace_strict(
            dict(points), default=None, return_dtype=pl.Float64
        )
        expr = (
            pl.when(pl.col("platform") == platform)
            .then(override.fill_null(default))
            .otherwise(expr)
        )
    return expr


def social_points(social: pl.DataFrame, settings: EngagementSettings) -> pl.DataFrame:
    """Points earned by each resolved actor: total and one column per platform."""
    scored = social.filter(pl.col("actor_customer_id").is_not_null()).with_columns(
        _points_expr(settings).alias("points")
    )
    per_platform = [
        pl.col("points").filter(pl.col("platform") == p).sum().alias(f"social_points_{p}")
        for p in SOCIAL_PLATFORMS
    ]
    return (
        scored.group_by(pl.col("actor_customer_id").cast(pl.String).alias("customer_id"))
        .agg(pl.col("points").sum().alias("social_points"), *per_platform)
        .sort("customer_id")
    )


# --------------------------------------------------------------------------------------------
# The whole table
# --------------------------------------------------------------------------------------------


def _default_as_of(referrals: pl.DataFrame, social: pl.DataFrame | None) -> datetime:
    stamps = [
        referrals.get_column(c).max() for c in ("converted_at", "referred_at") if referrals.height
    ]
    stamps = [s for s in stamps if s is not None]
    return max(stamps) if stamps else datetime(1970, 1, 1)


def _exposure_start(
    universe: pl.DataFrame,
    referrals: pl.DataFrame,
    customer_since: pl.DataFrame | None,
    as_of: date | datetime | None = None,
) -> pl.DataFrame:
    """customer_id, start: since when each customer could refer someone.

    `customer_since` (customer_id, since: signup or first order) when given; for a customer it
    does not cover, the referral programme's first observed referral, or the customer's own
    conversion as a referee if later (a referee could not refer before they joined). Only
    what was known at `as_of` counts: a conversion after it has not happened yet.
    """
    until = as_of_end(as_of)
    known = (
        referrals.filter(pl.col("referred_at").cast(pl.Datetime("us")) < until)
        if until is not None
        else referrals
    )
    programme = (
        known.get_column("referred_at").cast(pl.Datetime("us")).min() if known.height else None
    )
    frame = universe.join(referee_joined(known, until), on="customer_id", how="left")
    if customer_since is None:
        return exposure_start_of(frame, programme)
    since = customer_start(customer_since)
    return exposure_start_of(frame.join(since, on="customer_id", how="left"), programme)


def referee_joined(referrals: pl.DataFrame, until: datetime | None = None) -> pl.DataFrame:
    """customer_id, joined: each referee's first conversion (a referee could not refer before
    they joined); only conversions before `until` (the first instant after the as-of) when
    given: a referee converting later has not joined yet."""
    converted = pl.col("converted_at").is_not_null()
    if until is not None:
        converted &= pl.col("converted_at").cast(pl.Datetime("us")) < until
    return (
        referrals.filter(pl.col("referee_customer_id").is_not_null() & converted)
        .group_by(pl.col("referee_customer_id").cast(pl.String).alias("customer_id"))
        .agg(pl.col("converted_at").cast(pl.Datetime("us")).min().alias("joined"))
    )


def exposure_start_of(frame: pl.DataFrame, programme: datetime | None) -> pl.DataFrame:
    """customer_id, start for each row of `frame` (customer_id, joined, and since when known):
    `since`, else the programme's first referral or the customer's own conversion if later.
    Per customer, given the programme's start (the Spark engine runs it per batch)."""
    ts = pl.Datetime("us")
    fallback = pl.max_horizontal(pl.lit(programme, dtype=ts), pl.col("joined"))
    if "since" not in frame.columns:
        return frame.select("customer_id", fallback.alias("start"))
    return frame.select("customer_id", pl.coalesce("since", fallback).alias("start"))


@dataclass(frozen=True)
class EngagementParts:
    """What the engagement values take from reviews and social events alone, before CLV:

    * edges: the influence network (`influence.reaction_edges`), for CIE and CIV;
    * knowledge: customer_id, ckv_reviews, review_count, ckv_ideas (`customer_knowledge_value`);
    * points: customer_id, social_points and one column per platform (`social_points`).

    None of them moves with new orders: a run whose reviews and social events did not change can
    take them from its previous rows instead of reading the events again."""

    edges: pl.DataFrame
    knowledge: pl.DataFrame
    points: pl.DataFrame


def engagement_parts(
    reviews: pl.DataFrame, social: pl.DataFrame, settings: EngagementSettings
) -> EngagementParts:
    """The CLV-free parts of the engagement values, from the resolved reviews and social events."""
    return EngagementParts(
        edges=reaction_edges(social, settings),
        knowledge=customer_knowledge_value(reviews, settings),
        points=social_points(social, settings),
    )


def engagement_values(
    clv: pl.DataFrame,
    reviews: pl.DataFrame,
    social: pl.DataFrame,
    referrals: pl.DataFrame,
    settings: EngagementSettings | None = None,
    *,
    as_of: date | datetime | None = None,
    customers: pl.DataFrame | None = None,
    customer_since: pl.DataFrame | None = None,
    unvalued: pl.Series | None = None,
) -> pl.DataFrame:
    """One row per customer with CLV, CRV, CIV, CKV, CEV, social points and the quadrant.

    The customers are `customers.customer_id` when given, else every resolved id in the inputs.
    `customer_since` (customer_id, since: signup date or first order) starts each customer's
    referral exposure; without it exposure starts at the programme's first observed referral.
    Missing values are 0, but the CLV of the `unvalued` customers (ids whose completed orders
    all lack an FX rate), which is NULL with their CEV and quadrant. CEV = clv + crv + civ + ckv,
    and summed over customers sum(cev) = sum(clv) + sum(crv) + sum(ckv) (civ only moves value
    between customers; an unvalued customer cedes none, and their CEV is not in the sum).
    """
    settings = settings or EngagementSettings()
    values, _referral_model = engagement_values_from_parts(
        clv,
        referrals,
        engagement_parts(reviews, social, settings),
        settings,
        as_of=as_of or _default_as_of(referrals, social),
        customers=customers,
        customer_since=customer_since,
        unvalued=unvalued,
    )
    return values


def engagement_values_from_parts(
    clv: pl.DataFrame,
    referrals: pl.DataFrame,
    parts: EngagementParts,
    settings: EngagementSettings | None = None,
    *,
    as_of: date | datetime | None = None,
    customers: pl.DataFrame | None = None,
    customer_since: pl.DataFrame | None = None,
    unvalued: pl.Series | None = None,
) -> tuple[pl.DataFrame, ReferralModel]:
    """`engagement_values` from the CLV-free parts (`engagement_parts`): the same rows, and the
    referral model every customer's CRV was computed with (`referral.ReferralModel`)."""
    settings = settings or EngagementSettings()
    as_of = as_of or _default_as_of(referrals, None)
    clv = clv.select(pl.col("customer_id").cast(pl.String), pl.col("clv").cast(pl.Float64))
    if customer_since is not None and "referee_since" not in referrals.columns:
        referrals = with_referee_since(referrals, customer_since)
    credited = credited_referrals(referrals, clv, settings, as_of)
    edges = parts.edges
    if customers is not None:
        # The network among this as-of's customers: a reaction to (or by) someone who is not a
        # customer yet would carry value to a row that is not there, and civ would not sum to 0.
        edges = network_among(edges, customers.get_column("customer_id"))
    civ = influence_from_edges(edges, clv, settings)
    ckv = parts.knowledge.select(
        pl.col("customer_id").cast(pl.String),
        pl.col("ckv_reviews").cast(pl.Float64),
        pl.col("review_count").cast(pl.Int64),
        pl.col("ckv_ideas").cast(pl.Float64),
    )
    points = parts.points.select(
        pl.col("customer_id").cast(pl.String),
        pl.col("social_points").cast(pl.Float64),
        *(pl.col(f"social_points_{p}").cast(pl.Float64) for p in SOCIAL_PLATFORMS),
    )

    if customers is not None:
        universe = customers.select(pl.col("customer_id").cast(pl.String))
    else:
        ids = [
            clv.get_column("customer_id"),
            credited.get_column("referrer_customer_id"),
            credited.get_column("referee_customer_id"),
            civ.get_column("customer_id"),
            ckv.get_column("customer_id"),
            points.get_column("customer_id"),
        ]
        universe = pl.concat([s.cast(pl.String).alias("customer_id") for s in ids]).to_frame()
    # Sorted once, as one column: the joins below keep its order. Sorting the joined 28-column
    # frame instead cost 0.6-0.9 CPU-s at 1M customers, against 0.1.
    universe = universe.filter(pl.col("customer_id").is_not_null()).unique().sort("customer_id")

    crv, referral_model = customer_referral_value(
        credited, _exposure_start(universe, referrals, customer_since, as_of), settings, as_of
    )
    out = universe.join(
        clv.with_columns(pl.lit(True).alias("buyer")),
        on="customer_id",
        how="left",
        maintain_order="left",
    )
    for part in (crv, civ, ckv, points):
        out = out.join(part, on="customer_id", how="left", maintain_order="left")
    if unvalued is not None:
        ids = pl.Series(unvalued, dtype=pl.String)
        out = out.with_columns(pl.col("customer_id").is_in(ids.implode()).alias(UNVALUED))
    return assign_quadrants(finish_values(out), settings), referral_model


def unvalued_customers(
    profiles: pl.DataFrame, clv: pl.DataFrame, rfm_rows: pl.DataFrame
) -> pl.Series:
    """The customers of the as-of the purchase models could not value: a profile signed up by
    then (`profiles`, customer_id) with neither a CLV (`clv`) nor a customer_rfm row
    (`rfm_rows`). `rfm.score_rfm` gives every such profile a row, a Prospect's when they never
    bought, but those whose completed orders up to the as-of all lack an FX rate (its
    `left_out`, `sql/work/customers_without_rate.sql`), and the purchase models value none of
    theirs. A buyer without a profile has no row here or in engagement_value. The Spark engine:
    `spark/engagement.py::unvalued_customers`."""
    return (
        profiles.select(pl.col("customer_id").cast(pl.String))
        .join(clv.select(pl.col("customer_id").cast(pl.String)), on="customer_id", how="anti")
        .join(rfm_rows.select(pl.col("customer_id").cast(pl.String)), on="customer_id", how="anti")
        .unique()
        .sort("customer_id")
        .get_column("customer_id")
    )


# The flag of a customer whose completed orders are all left out of the purchase models for want
# of an FX rate, joined before `finish_values` (which keeps their CLV NULL) and not a column of
# the rows it returns: their NULL clv says it.
UNVALUED = "unvalued"


def finish_values(out: pl.DataFrame) -> pl.DataFrame:
    """The engagement_value columns from each customer's joined parts (buyer, clv and the frames
    of CRV, CIV, CKV and social points; optionally the flag `UNVALUED`): missing values 0, ckv
    and cev summed. An unvalued customer without a CLV keeps clv NULL, and so cev: their CLV was
    not measured, and 0 would say it was (their CRV, CIV and CKV were, and stay). Per customer
    (the Spark engine runs it per batch)."""
    unvalued = (
        pl.col(UNVALUED).fill_null(False) & pl.col("clv").is_null()
        if UNVALUED in out.columns
        else pl.lit(False)
    )
    out = out.with_columns(unvalued.alias(UNVALUED))
    value_cols = [c for c in out.columns if c not in ("customer_id", UNVALUED)]
    out = (
        out.with_columns(
            [
                pl.col(c).fill_null(False)
                if out.schema[c] == pl.Boolean
                else pl.col(c).fill_null(0)
                if out.schema[c].is_integer()
                else pl.col(c).fill_null(0.0)
                for c in value_cols
            ]
        )
        .with_columns(pl.when(~pl.col(UNVALUED)).then(pl.col("clv")).alias("clv"))
        .with_columns((pl.col("ckv_reviews") + pl.col("ckv_ideas")).alias("ckv"))
        .with_columns(
            (pl.col("clv") + pl.col("crv") + pl.col("civ") + pl.col("ckv")).alias("cev"),
        )
    )
    return out.select(list(VALUE_COLUMNS))


VALUE_COLUMNS = (
    "customer_id",
    "buyer",
    "clv",
    "crv",
    "crv_realized",
    "crv_referrals",
    "crv_expected_referrals",
    "crv_value_per_referral",
    "civ",
    "civ_gained",
    "civ_ceded",
    "cie",
    "ckv_reviews",
    "ckv_ideas",
    "ckv",
    "review_count",
    "cev",
    "social_points",
    *(f"social_points_{p}" for p in SOCIAL_PLATFORMS),
)
