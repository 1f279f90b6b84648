"""The engagement metrics beyond CLV: social points, CRV, CIV, CKV, CEV and the CLV x CRV quadrants.

Formulas follow the project's METRICS.md (Kumar's customer engagement value framework); every
weight and threshold is a field of `EngagementSettings`, whose docstring lists the defaults and
the choices made where the literature leaves room. Everything is vectorised (polars for the
tables, scipy.sparse for the influence network). No Dagster import here.

Inputs are polars frames whose customer ids are already resolved
(see `engagement_box.identity.links`):

* clv:       customer_id, clv
* reviews:   customer_id, helpful_votes, verified_purchase
* social:    actor_customer_id, target_customer_id, event_type, platform
* referrals: referral_id, referrer_customer_id, referee_customer_id, referred_at, converted_at,
             referrer_reward, referee_reward, would_have_joined_anyway
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

import numpy as np
import polars as pl
import scipy.sparse as sp

from engagement_box.staging.contracts import SOCIAL_PLATFORMS, SOCIAL_REACTIONS

DEFAULT_SOCIAL_POINTS: Mapping[str, float] = MappingProxyType(
    {
        "like": 1.0,
        "pin": 1.0,
        "tweet": 1.0,
        "comment": 5.0,
        "share": 10.0,
        "retweet": 10.0,
        # Not in the Magento guide. A mention is text the customer writes naming someone, the same
        # effort as a comment and less reach than a share: 5 points.
        "mention": 5.0,
    }
)

QUADRANTS = ("Champions", "Affluents", "Advocates", "Misers")
QUADRANT_PLAYS: Mapping[str, str] = MappingProxyType(
    {
        "Champions": "Retention: reward programs, private sales and early access; keep them close.",
        "Affluents": "Referral incentives: reward them for bringing friends (high CLV, low CRV).",
        "Advocates": "Purchase incentives: personalised offers to grow their own spend "
        "(high CRV, low CLV).",
        "Misers": "Both: a purchase incentive first, then a referral incentive once they buy "
        "again.",
    }
)


@dataclass(frozen=True)
class EngagementSettings:
    """Weights and thresholds of the engagement metrics, with documented defaults.

    Social points
      social_points: points per event type (Magento guide: like/pin/tweet 1, comment 5,
        share/retweet 10; mention 5, our choice). social_points_by_platform: optional per-platform
        overrides {platform: {event_type: points}} ("separate scores per channel").

    CRV (Kumar, Petersen & Leone)
      Credited referrals: converted (converted_at not NULL), referrer and referee resolved,
      referrer != referee; a referee counts once: the first converted referral wins (earliest
      converted_at, then referred_at, then smallest referral_id); then only incentivized ones
      (referrer_reward + referee_reward > 0) earn CRV.
      value = (1 - p2) * (A - a - M + ACQ1) + p2 * ACQ2, A = referee CLV, a = both rewards,
      p2 = 1 if would_have_joined_anyway, 0 if not, crv_unknown_type2_share if unknown
      (None: the share observed among credited referrals with a known answer, 0.5 if none).
      Discount: value / (1 + crv_discount_rate) ** t, t = years from converted_at to as-of
      (clipped at 0): older referrals weigh less.

    CIV (Kumar, Bhaskaran, Mirchandani & Shah)
      Reactions (event types civ_reaction_types) of customer j to customer i's content, j != i,
      weighted by civ_event_weights (None: every reaction weighs 1). W_ij = share of j's reaction
      weight that goes to i. S = sum_{n=1..K} beta^n W^n, the Neumann series of (I - beta W)^-1 - I
      truncated at K = civ_max_order (paths of up to K hops). The truncation keeps S an explicit
      sparse matrix, so its diagonal and the referral pairs can be removed exactly.
      CIE_i = sum_j S_ij / sum S. share_ij = S_ij / sum_{k != j} S_kj (j != i);
      CIV_i = civ_attribution_share * sum_{j != i} share_ij * CLV_j, excluding every j for which i
      is credited with CRV (no double counting). Entries of W^n below civ_prune_tol are dropped.

    CKV (a documented proxy)
      w = (1 + ckv_helpful_weight * ln(1 + helpful_votes)) * (ckv_verified_weight if verified
      else ckv_unverified_weight); CKV_i = sum of w * ckv_value_per_review. Our exports have no
      ideas, so the ideas term is 0 (column ckv_ideas).

    Quadrants
      high CLV = clv > the quadrant_clv_quantile of clv over all customers (default the median),
      high CRV = crv > the quadrant_crv_quantile of crv (with most customers at CRV 0 the median is
      0, so any positive CRV is high). Linear interpolation between order statistics.
    """

    social_points: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SOCIAL_POINTS))
    social_points_by_platform: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    crv_discount_rate: float = 0.10
    crv_unknown_type2_share: float | None = None
    crv_retention_cost: float = 0.0
    crv_acquisition_saved_type1: float = 0.0
    crv_acquisition_saved_type2: float = 0.0

    civ_beta: float = 0.5
    civ_max_order: int = 2
    civ_reaction_types: Sequence[str] = SOCIAL_REACTIONS
    civ_event_weights: Mapping[str, float] | None = None
    civ_attribution_share: float = 1.0
    civ_prune_tol: float = 0.0

    ckv_value_per_review: float = 1.0
    ckv_helpful_weight: float = 1.0
    ckv_verified_weight: float = 1.0
    ckv_unverified_weight: float = 0.5

    quadrant_clv_quantile: float = 0.5
    quadrant_crv_quantile: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.civ_beta < 1:
            raise ValueError("civ_beta must be in (0, 1) for the series to converge")
        if self.civ_max_order < 1:
            raise ValueError("civ_max_order must be >= 1")
        share = self.crv_unknown_type2_share
        if share is not None and not 0 <= share <= 1:
            raise ValueError("crv_unknown_type2_share must be in [0, 1]")


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
        scored.group_by(pl.col("actor_customer_id").alias("customer_id"))
        .agg(pl.col("points").sum().alias("social_points"), *per_platform)
        .sort("customer_id")
    )


# --------------------------------------------------------------------------------------------
# CRV
# --------------------------------------------------------------------------------------------


def _default_as_of(referrals: pl.DataFrame) -> datetime:
    latest = referrals.get_column("converted_at").max() if referrals.height else None
    return latest if latest is not None else datetime(1970, 1, 1)


def credited_referrals(
    referrals: pl.DataFrame,
    clv: pl.DataFrame,
    settings: EngagementSettings,
    as_of: datetime | None = None,
) -> pl.DataFrame:
    """One row per referral credited with CRV, with its expected, discounted value.

    Columns: referral_id, referrer_customer_id, referee_customer_id, converted_at, referee_clv,
    rewards, p_type2, value, discount, crv_value.
    """
    as_of = as_of or _default_as_of(referrals)
    eligible = referrals.filter(
        pl.col("converted_at").is_not_null()
        & pl.col("referrer_customer_id").is_not_null()
        & pl.col("referee_customer_id").is_not_null()
        & (pl.col("referrer_customer_id") != pl.col("referee_customer_id"))
    )
    first = (
        eligible.sort(["referee_customer_id", "converted_at", "referred_at", "referral_id"])
        .unique(subset="referee_customer_id", keep="first", maintain_order=True)
        .with_columns(
            (
                pl.col("referrer_reward").fill_null(0.0) + pl.col("referee_reward").fill_null(0.0)
            ).alias("rewards")
        )
        .filter(pl.col("rewards") > 0)
    )
    share = settings.crv_unknown_type2_share
    if share is None:
        known = first.get_column("would_have_joined_anyway").drop_nulls()
        share = float(known.cast(pl.Float64).mean()) if known.len() else 0.5
    seconds_per_year = 365.25 * 86400.0
    years = (
        (pl.lit(as_of, dtype=pl.Datetime("us")) - pl.col("converted_at").cast(pl.Datetime("us")))
        .dt.total_seconds()
        .cast(pl.Float64)
        / seconds_per_year
    ).clip(lower_bound=0.0)
    clv_lookup = clv.select(
        pl.col("customer_id").alias("referee_customer_id"),
        pl.col("clv").cast(pl.Float64).alias("referee_clv"),
    )
    s = settings
    return (
        first.join(clv_lookup, on="referee_customer_id", how="left")
        .with_columns(
            pl.col("referee_clv").fill_null(0.0),
            pl.col("would_have_joined_anyway").cast(pl.Float64).fill_null(share).alias("p_type2"),
            (pl.lit(1.0 + s.crv_discount_rate) ** (-years)).alias("discount"),
        )
        .with_columns(
            (
                (1.0 - pl.col("p_type2"))
                * (
                    pl.col("referee_clv")
                    - pl.col("rewards")
                    - s.crv_retention_cost
                    + s.crv_acquisition_saved_type1
                )
                + pl.col("p_type2") * s.crv_acquisition_saved_type2
            ).alias("value")
        )
        .with_columns((pl.col("value") * pl.col("discount")).alias("crv_value"))
        .select(
            "referral_id",
            "referrer_customer_id",
            "referee_customer_id",
            "converted_at",
            "referee_clv",
            "rewards",
            "p_type2",
            "value",
            "discount",
            "crv_value",
        )
        .sort("referral_id")
    )


def customer_referral_value(credited: pl.DataFrame) -> pl.DataFrame:
    """CRV per referrer from `credited_referrals`: crv and the number of credited referrals."""
    return (
        credited.group_by(pl.col("referrer_customer_id").alias("customer_id"))
        .agg(
            pl.col("crv_value").sum().alias("crv"),
            pl.len().cast(pl.Int64).alias("crv_referrals"),
        )
        .sort("customer_id")
    )


# --------------------------------------------------------------------------------------------
# CIV
# --------------------------------------------------------------------------------------------


def _normalized_w(edges: pl.DataFrame, n: int) -> sp.csr_matrix:
    """W_ij = weight of j's reactions to i / j's total reaction weight (columns sum to 1 or 0)."""
    i = edges.get_column("i").to_numpy()
    j = edges.get_column("j").to_numpy()
    w = edges.get_column("weight").to_numpy().astype(np.float64)
    raw = sp.csr_matrix((w, (i, j)), shape=(n, n))
    raw.sum_duplicates()
    col_total = np.bincount(raw.indices, weights=raw.data, minlength=n)
    inv = np.divide(1.0, col_total, out=np.zeros_like(col_total), where=col_total > 0)
    # Scale each stored entry by its column's inverse total (no sparse x diagonal product).
    raw.data *= inv[raw.indices]
    return raw


def influence_matrix(edges: pl.DataFrame, n: int, settings: EngagementSettings) -> sp.csr_matrix:
    """S = sum_{k=1..K} beta^k W^k as an explicit sparse matrix, for integer-indexed edges
    (columns i: influencer, j: reactor, weight). Fill-in grows with K: for K <= 2 the metrics use
    matrix-vector products instead and never build S."""
    W = _normalized_w(edges, n)
    beta = settings.civ_beta
    power = W
    S = W * beta
    for order in range(2, settings.civ_max_order + 1):
        power = (power @ W).tocsr()
        if settings.civ_prune_tol > 0:
            power.data[power.data < settings.civ_prune_tol] = 0.0
            power.eliminate_zeros()
        S = S + power * beta**order
    return S.tocsr()


@dataclass(frozen=True)
class _InfluenceTerms:
    row_sum: np.ndarray  # sum_j S_ij
    col_sum: np.ndarray  # sum_i S_ij
    diag: np.ndarray  # S_ii
    pair: np.ndarray  # S_ij for the requested (i, j) pairs
    matvec: object  # v -> S v


def _influence_terms(
    edges: pl.DataFrame, n: int, settings: EngagementSettings, pi: np.ndarray, pj: np.ndarray
) -> _InfluenceTerms:
    beta = settings.civ_beta
    if settings.civ_max_order > 2:
        S = influence_matrix(edges, n, settings)
        return _InfluenceTerms(
            row_sum=np.asarray(S.sum(axis=1)).ravel(),
            col_sum=np.asarray(S.sum(axis=0)).ravel(),
            diag=S.diagonal(),
            pair=np.asarray(S[pi, pj]).ravel() if pi.size else np.zeros(0),
            matvec=lambda v: S @ v,
        )
    # K <= 2: S = b W + b^2 W^2 through matrix-vector products, linear in the number of edges.
    # diag(W^2)_i = sum_k W_ik W_ki; (W^2)_ij for the pairs = row i of W . column j of W.
    W = _normalized_w(edges, n)
    Wt = W.T.tocsr()
    ones = np.ones(n)
    second = settings.civ_max_order == 2
    b2 = beta**2 if second else 0.0
    w1 = W @ ones
    row_sum = beta * w1 + b2 * (W @ w1)
    c1 = Wt @ ones
    col_sum = beta * c1 + b2 * (Wt @ c1)
    diag = b2 * np.asarray(W.multiply(Wt).sum(axis=1)).ravel() if second else np.zeros(n)
    pair = np.zeros(pi.size)
    if pi.size:
        pair = beta * np.asarray(W[pi, pj]).ravel()
        if second:
            pair += b2 * np.asarray(W[pi, :].multiply(Wt[pj, :]).sum(axis=1)).ravel()
    return _InfluenceTerms(
        row_sum=row_sum,
        col_sum=col_sum,
        diag=diag,
        pair=pair,
        matvec=lambda v: beta * (W @ v) + b2 * (W @ (W @ v)),
    )


def customer_influence_value(
    social: pl.DataFrame,
    clv: pl.DataFrame,
    credited: pl.DataFrame,
    settings: EngagementSettings,
) -> pl.DataFrame:
    """CIE and CIV per influencer (customers with no influence are absent).

    Columns: customer_id, cie, civ, civ_referral_excluded (value left out because the same
    influencee is already credited to this customer through CRV).
    """
    schema = {
        "customer_id": pl.String,
        "cie": pl.Float64,
        "civ": pl.Float64,
        "civ_referral_excluded": pl.Float64,
    }
    weights = settings.civ_event_weights
    weight_expr = (
        pl.col("event_type").replace_strict(dict(weights), default=0.0, return_dtype=pl.Float64)
        if weights is not None
        else pl.lit(1.0)
    )
    reactions = (
        social.filter(
            pl.col("event_type").is_in(list(settings.civ_reaction_types))
            & pl.col("actor_customer_id").is_not_null()
            & pl.col("target_customer_id").is_not_null()
            & (pl.col("actor_customer_id") != pl.col("target_customer_id"))
        )
        .select(
            pl.col("target_customer_id").alias("influencer"),
            pl.col("actor_customer_id").alias("reactor"),
            weight_expr.alias("weight"),
        )
        .filter(pl.col("weight") > 0)
    )
    if reactions.height == 0:
        return pl.DataFrame(schema=schema)
    influencer = reactions.get_column("influencer")
    reactor = reactions.get_column("reactor")
    # Integer index of each customer id: its position among the sorted node ids. One hash pass
    # finds the distinct ids (both columns at once), only those are sorted, and one join maps all
    # the edge ends to their index (cheaper than sorting or casting every id to an Enum).
    ends = pl.concat([influencer, reactor]).alias("customer_id")
    node_ids = ends.unique().sort()
    nodes = node_ids.to_frame("customer_id").with_row_index("idx")
    n = nodes.height

    def index_of(ids: pl.Series) -> np.ndarray:
        return (
            ids.alias("customer_id")
            .to_frame()
            .join(nodes, on="customer_id", how="left", maintain_order="left")
            .get_column("idx")
            .to_numpy()
        )

    ends_idx = index_of(ends)
    m = influencer.len()
    edges = pl.DataFrame(
        {
            "i": ends_idx[:m],
            "j": ends_idx[m:],
            "weight": reactions.get_column("weight"),
        }
    )
    pairs = credited.select("referrer_customer_id", "referee_customer_id").filter(
        pl.col("referrer_customer_id").is_in(node_ids.implode())
        & pl.col("referee_customer_id").is_in(node_ids.implode())
    )
    pi = index_of(pairs.get_column("referrer_customer_id")).astype(np.int64)
    pj = index_of(pairs.get_column("referee_customer_id")).astype(np.int64)
    terms = _influence_terms(edges, n, settings, pi, pj)

    grand = terms.row_sum.sum()
    cie = terms.row_sum / grand if grand > 0 else np.zeros(n)

    clv_vec = (
        nodes.join(
            clv.select("customer_id", pl.col("clv").cast(pl.Float64)), on="customer_id", how="left"
        )
        .sort("idx")
        .get_column("clv")
        .fill_null(0.0)
        .to_numpy()
    )
    # share_ij = S_ij / sum_{k != j} S_kj for j != i; v_j = CLV_j / that denominator.
    col_off = terms.col_sum - terms.diag
    v = np.divide(clv_vec, col_off, out=np.zeros(n), where=col_off > 1e-15)
    civ_all = terms.matvec(v) - terms.diag * v
    excluded = np.bincount(pi, weights=terms.pair * v[pj], minlength=n) if pi.size else np.zeros(n)

    share = settings.civ_attribution_share
    return (
        nodes.with_columns(
            pl.Series("cie", cie),
            pl.Series("civ", share * (civ_all - excluded)),
            pl.Series("civ_referral_excluded", share * excluded),
        )
        .select(list(schema))
        .sort("customer_id")
    )


# --------------------------------------------------------------------------------------------
# CKV
# --------------------------------------------------------------------------------------------


def customer_knowledge_value(reviews: pl.DataFrame, settings: EngagementSettings) -> pl.DataFrame:
    """CKV per review author: ckv_reviews (value), review_count, ckv_ideas (0: no ideas export)."""
    s = settings
    weight = (
        1.0 + s.ckv_helpful_weight * pl.col("helpful_votes").cast(pl.Float64).fill_null(0.0).log1p()
    ) * pl.when(pl.col("verified_purchase").fill_null(False)).then(s.ckv_verified_weight).otherwise(
        s.ckv_unverified_weight
    )
    return (
        reviews.filter(pl.col("customer_id").is_not_null())
        .group_by("customer_id")
        .agg(
            (weight.sum() * s.ckv_value_per_review).alias("ckv_reviews"),
            pl.len().cast(pl.Int64).alias("review_count"),
        )
        .with_columns(pl.lit(0.0).alias("ckv_ideas"))
        .sort("customer_id")
    )


# --------------------------------------------------------------------------------------------
# Quadrants and the whole table
# --------------------------------------------------------------------------------------------


def assign_quadrants(frame: pl.DataFrame, settings: EngagementSettings) -> pl.DataFrame:
    """Add clv_high, crv_high, quadrant and quadrant_play to a frame with clv and crv columns."""
    if frame.height == 0:
        return frame.with_columns(
            pl.lit(None, pl.Boolean).alias("clv_high"),
            pl.lit(None, pl.Boolean).alias("crv_high"),
            pl.lit(None, pl.String).alias("quadrant"),
            pl.lit(None, pl.String).alias("quadrant_play"),
        )
    clv_cut = frame.get_column("clv").quantile(settings.quadrant_clv_quantile, "linear")
    crv_cut = frame.get_column("crv").quantile(settings.quadrant_crv_quantile, "linear")
    high_clv = pl.col("clv") > clv_cut
    high_crv = pl.col("crv") > crv_cut
    quadrant = (
        pl.when(high_clv & high_crv)
        .then(pl.lit("Champions"))
        .when(high_clv)
        .then(pl.lit("Affluents"))
        .when(high_crv)
        .then(pl.lit("Advocates"))
        .otherwise(pl.lit("Misers"))
    )
    return frame.with_columns(
        high_clv.alias("clv_high"), high_crv.alias("crv_high"), quadrant.alias("quadrant")
    ).with_columns(
        pl.col("quadrant")
        .replace_strict(dict(QUADRANT_PLAYS), return_dtype=pl.String)
        .alias("quadrant_play")
    )


def engagement_values(
    clv: pl.DataFrame,
    reviews: pl.DataFrame,
    social: pl.DataFrame,
    referrals: pl.DataFrame,
    settings: EngagementSettings | None = None,
    *,
    as_of: datetime | None = None,
    customers: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per customer with CLV, CRV, CIV, CKV, CEV, social points and the quadrant.

    The customers are `customers.customer_id` when given, else every resolved id in the inputs.
    Columns: customer_id, clv, crv, crv_referrals, civ, civ_referral_excluded, cie, ckv_reviews,
    ckv_ideas, ckv, review_count, cev, social_points, social_points_<platform>..., clv_high,
    crv_high, quadrant, quadrant_play. Missing values are 0.
    """
    settings = settings or EngagementSettings()
    clv = clv.select(pl.col("customer_id").cast(pl.String), pl.col("clv").cast(pl.Float64))
    credited = credited_referrals(referrals, clv, settings, as_of)
    crv = customer_referral_value(credited)
    civ = customer_influence_value(social, clv, credited, settings)
    ckv = customer_knowledge_value(reviews, settings)
    points = social_points(social, settings)

    if customers is not None:
        universe = customers.select(pl.col("customer_id").cast(pl.String)).unique()
    else:
        universe = pl.concat(
            [f.select("customer_id") for f in (clv, crv, civ, ckv, points)]
        ).unique()
    universe = universe.filter(pl.col("customer_id").is_not_null())

    out = universe
    for part in (clv, crv, civ, ckv, points):
        out = out.join(part, on="customer_id", how="left")
    value_cols = [c for c in out.columns if c != "customer_id"]
    out = (
        out.with_columns(
            [
                pl.col(c).fill_null(0) if out.schema[c].is_integer() else pl.col(c).fill_null(0.0)
                for c in value_cols
            ]
        )
        .with_columns(
            (pl.col("ckv_reviews") + pl.col("ckv_ideas")).alias("ckv"),
        )
        .with_columns(
            (pl.col("clv") + pl.col("crv") + pl.col("civ") + pl.col("ckv")).alias("cev"),
        )
    )
    platform_cols = [f"social_points_{p}" for p in SOCIAL_PLATFORMS]
    out = out.select(
        "customer_id",
        "clv",
        "crv",
        "crv_referrals",
        "civ",
        "civ_referral_excluded",
        "cie",
        "ckv_reviews",
        "ckv_ideas",
        "ckv",
        "review_count",
        "cev",
        "social_points",
        *platform_cols,
    ).sort("customer_id")
    return assign_quadrants(out, settings)
