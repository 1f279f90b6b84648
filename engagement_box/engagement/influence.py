"""CIE and CIV, customer influence (Kumar, Bhaskaran, Mirchandani & Shah 2013), as a ledger.

W_ij = the share of customer j's reactions (weighted) that go to customer i's content. Influence
over up to K hops: S = sum_{n=1..K} beta^n W^n. Loops do not count: S_ii (i influencing
themselves through others, A -> B -> A) is dropped, from CIE as from the ledger.
CIE_i = sum_{j != i} S_ij / sum_{k != l} S_kl; share_ij = S_ij / sum_{k != j} S_kj.

The ledger: a fixed share phi (civ_attribution_share) of each influenced customer's CLV is
attributed to influence. It moves to their influencers in proportion to share_ij (civ_gained)
and leaves the influenced customer (civ_ceded); civ = civ_gained - civ_ceded. Summed over all
customers civ is 0, so summing CEV counts no customer's value twice. A customer whose only
reactions come back to them through a loop cedes nothing.

Everything is vectorised with scipy.sparse; for K <= 2 S is never built (matrix-vector
products). No Dagster import here.
"""

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from engagement_box.engagement.config import EngagementSettings

INFLUENCE_SCHEMA = {
    "customer_id": pl.String,
    "cie": pl.Float64,
    "civ_gained": pl.Float64,
    "civ_ceded": pl.Float64,
    "civ": pl.Float64,
}


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
    matvec: object  # v -> S v


def _influence_terms(edges: pl.DataFrame, n: int, settings: EngagementSettings) -> _InfluenceTerms:
    beta = settings.civ_beta
    if settings.civ_max_order > 2:
        S = influence_matrix(edges, n, settings)
        return _InfluenceTerms(
            row_sum=np.asarray(S.sum(axis=1)).ravel(),
            col_sum=np.asarray(S.sum(axis=0)).ravel(),
            diag=S.diagonal(),
            matvec=lambda v: S @ v,
        )
    # K <= 2: S = b W + b^2 W^2 through matrix-vector products, linear in the number of edges.
    # diag(W^2)_i = sum_k W_ik W_ki.
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
    return _InfluenceTerms(
        row_sum=row_sum,
        col_sum=col_sum,
        diag=diag,
        matvec=lambda v: beta * (W @ v) + b2 * (W @ (W @ v)),
    )


def reaction_edges(social: pl.DataFrame, settings: EngagementSettings) -> pl.DataFrame:
    """The influence network's edges: one row per (influencer, reactor) pair with the summed
    weight of the reactor's counted reactions to the influencer's content.

    Columns: target_customer_id (the influencer), actor_customer_id (the reactor), weight > 0;
    in no particular order. It depends on the social events and the settings only (not on CLV), so a
    run whose events did not change can reuse it (`assets/engagement.py`)."""
    weights = settings.civ_event_weights
    weight_expr = (
        pl.col("event_type").replace_strict(dict(weights), default=0.0, return_dtype=pl.Float64)
        if weights is not None
        else pl.lit(1.0)
    )
    return (
        social.filter(
            pl.col("event_type").is_in(list(settings.civ_reaction_types))
            & pl.col("actor_customer_id").is_not_null()
            & pl.col("target_customer_id").is_not_null()
            & (pl.col("actor_customer_id") != pl.col("target_customer_id"))
        )
        .select(
            pl.col("target_customer_id").cast(pl.String),
            pl.col("actor_customer_id").cast(pl.String),
            weight_expr.alias("weight"),
        )
        .filter(pl.col("weight") > 0)
        .group_by("target_customer_id", "actor_customer_id")
        .agg(pl.col("weight").sum())
    )


def network_among(edges: pl.DataFrame, customers: pl.Series) -> pl.DataFrame:
    """The edges of `reaction_edges` whose influencer and reactor are both among `customers`."""
    ids = customers.cast(pl.String).drop_nulls().unique().implode()
    return edges.filter(
        pl.col("target_customer_id").is_in(ids) & pl.col("actor_customer_id").is_in(ids)
    )


def customer_influence_value(
    social: pl.DataFrame, clv: pl.DataFrame, settings: EngagementSettings
) -> pl.DataFrame:
    """CIE and the CIV ledger per customer of the influence network (others are absent).

    Columns: customer_id, cie (share of all influence), civ_gained (value moved to this customer
    from those they influence), civ_ceded (this customer's value moved to their influencers),
    civ = civ_gained - civ_ceded.
    """
    return influence_from_edges(reaction_edges(social, settings), clv, settings)


def influence_from_edges(
    edges: pl.DataFrame, clv: pl.DataFrame, settings: EngagementSettings
) -> pl.DataFrame:
    """`customer_influence_value` from the network's edges (`reaction_edges`): the same rows."""
    if edges.height == 0:
        return pl.DataFrame(schema=INFLUENCE_SCHEMA)
    influencer = edges.get_column("target_customer_id")
    reactor = edges.get_column("actor_customer_id")
    # Integer index of each customer id: its position among the sorted node ids. One hash pass
    # finds the distinct ids (both columns at once), only those are sorted, and one join maps all
    # the edge ends to their index (cheaper than sorting or casting every id to an Enum).
    ends = pl.concat([influencer, reactor]).alias("customer_id")
    nodes = ends.unique().sort().to_frame("customer_id").with_row_index("idx")
    n = nodes.height
    ends_idx = (
        ends.to_frame()
        .join(nodes, on="customer_id", how="left", maintain_order="left")
        .get_column("idx")
        .to_numpy()
    )
    m = influencer.len()
    indexed = pl.DataFrame(
        {"i": ends_idx[:m], "j": ends_idx[m:], "weight": edges.get_column("weight")}
    )
    terms = _influence_terms(indexed, n, settings)

    # Loops do not count: i's influence over others, a share of everyone's over others.
    row_off = np.clip(terms.row_sum - terms.diag, 0.0, None)
    grand = row_off.sum()
    cie = row_off / grand if grand > 0 else np.zeros(n)

    clv_vec = (
        nodes.join(
            clv.select(pl.col("customer_id").cast(pl.String), pl.col("clv").cast(pl.Float64)),
            on="customer_id",
            how="left",
        )
        .sort("idx")
        .get_column("clv")
        .fill_null(0.0)
        .to_numpy()
    )
    # Only value a customer has can move: a negative CLV moves nothing.
    movable = settings.civ_attribution_share * np.clip(clv_vec, 0.0, None)
    # share_ij = S_ij / sum_{k != j} S_kj for j != i; v_j = movable_j / that denominator.
    col_off = terms.col_sum - terms.diag
    influenced = col_off > 1e-15
    v = np.divide(movable, col_off, out=np.zeros(n), where=influenced)
    gained = terms.matvec(v) - terms.diag * v
    ceded = np.where(influenced, movable, 0.0)
    return (
        nodes.with_columns(
            pl.Series("cie", cie),
            pl.Series("civ_gained", gained),
            pl.Series("civ_ceded", ceded),
            pl.Series("civ", gained - ceded),
        )
        .select(list(INFLUENCE_SCHEMA))
        .sort("customer_id")
    )
