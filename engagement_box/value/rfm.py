"""RFM scores (1-5 by quintile) and the R x F segment map of `docs/METRICS.md`.

polars and numpy, no Dagster import.

Scores
    R from days_since_last_order = days from the last completed order to `as_of` (fewer days =
      better, so reversed);
    F from order_count = number of completed orders;
    M from total_spend = total completed spend (reporting currency).
The column names differ from the purchase models' `frequency` (repeat purchases) and
`monetary_value` (mean repeat order value) on purpose: one name, one meaning
(docs/DATA_DICTIONARY.md).

Tie rule (one rule, for all three scores): **equal values always get the same score**. A
customer's score is set by the share of scored customers with a strictly worse value:

    score = 1 + floor(5 * (number of customers with a strictly worse value) / n)

i.e. the quintile of the lowest rank in the tie (rank method "min"). The rule is deterministic,
independent of row order and of customer ids, and puts identical customers in the same cell.
Its price: when a value is shared by many customers the quintiles are uneven and some scores can
be empty. Example: if 60 % of customers ordered once they all get F = 1, and the two-order
customers (60 % strictly below them) get F = 4; F = 2 and 3 are then unused. If everybody has the
same value, everybody scores 1.

Segments come from R and F only (the 25-cell map below, each cell exactly once). Customers with no
completed order are prospects: segment "Prospect" and null scores. A customer whose completed
orders are all left out of the value models for want of an FX rate (`left_out`) is neither: they
have no row, as they have none in the summary the models read (their segment is NULL in the
customer mart).
"""

import datetime as dt
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import polars as pl

PROSPECT = "Prospect"
N_SCORES = 5

# (segment, R scores, F scores): each of the 25 (R, F) cells belongs to exactly one segment. A
# segment that is not one rectangle of the grid is given as several rules of the same name.
SEGMENT_RULES: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = (
    ("Hibernating", (1, 2), (1, 2)),
    ("At Risk", (1, 2), (3, 4)),
    ("Can't Lose Them", (1, 2), (5,)),
    ("About to Sleep", (3,), (1, 2)),
    ("Need Attention", (3,), (3,)),
    ("Loyal Customers", (3, 4), (4, 5)),
    ("Promising", (4,), (1,)),
    ("New Customers", (5,), (1,)),
    ("Potential Loyalists", (4, 5), (2, 3)),
    ("Champions", (5,), (4, 5)),
)


def segment_names(
    rules: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...],
) -> tuple[str, ...]:
    """The segments of `rules`, each once, in their first rule's order (a segment of several
    rules was listed twice, and polars refused the ENUM with "Enum categories must be unique",
    a message that names no segment: a review)."""
    return tuple(dict.fromkeys(name for name, _, _ in rules))


SEGMENTS: tuple[str, ...] = segment_names(SEGMENT_RULES)
SEGMENT_DTYPE = pl.Enum([*SEGMENTS, PROSPECT])

# A segment renamed: its earlier name -> its name now (the same cells of the grid). Segment
# migration reads a version published under the earlier name with the name now, so a rename
# alone moves no one (a review: renaming "At Risk" counted every one of them as moving). Keep an
# entry while versions published under the earlier name are retained; a renamed segment whose
# cells change too is a new segment, not a rename (docs/UPGRADING.md, "Renaming a segment").
SEGMENT_RENAMES: Mapping[str, str] = MappingProxyType({})


def check_renames(renames: Mapping[str, str], segments: tuple[str, ...]) -> None:
    """Refuse a rename map a migration could not read one way: each earlier name must lead to a
    segment of today's map in one step, and must not be a segment's name itself."""
    today = {*segments, PROSPECT}
    for earlier, now in renames.items():
        if earlier in today:
            raise ValueError(
                f"segment rename {earlier!r} -> {now!r}: {earlier!r} is a segment of the map "
                "today, so its versions' rows cannot be read as another's"
            )
        if now not in today:
            raise ValueError(
                f"segment rename {earlier!r} -> {now!r}: {now!r} is not a segment of the map "
                f"today ({', '.join(sorted(today))}); point every earlier name at today's name"
            )


check_renames(SEGMENT_RENAMES, SEGMENTS)

# The play each segment calls for, in words: `segment_play` of the RFM mart, and the `play` of
# the segment audiences.
SEGMENT_PLAYS: Mapping[str, str] = MappingProxyType(
    {
        "Champions": "Reward and recognise: VIP reward tier, private sales and early access; "
        "invite reviews and referrals.",
        "Loyal Customers": "Deepen loyalty: reward program upgrades, personalised cross-sell "
        "recommendations, ask for reviews.",
        "Potential Loyalists": "Convert to loyal: invite to the reward program, newsletters and "
        "wishlists, personalised recommendations.",
        "New Customers": "Onboard: smooth follow-up emails, care tips for the purchase, ask them "
        "to rate it, newsletter sign-up.",
        "Promising": "Drive the second purchase: personalised email offer or free samples with "
        "the next order.",
        "Need Attention": "Re-engage: limited-time personalised offers based on past purchases.",
        "About to Sleep": "Reconnect: reminders (abandoned carts, wishlists), popular products, "
        "a modest discount.",
        "At Risk": "Win back: personalised win-back emails with special offers, ask for feedback.",
        "Can't Lose Them": "Win back at any cost: the strongest offer, personal outreach (live "
        "chat or call), find out what went wrong.",
        "Hibernating": "Low-cost reactivation: brand content, giveaways and contests; leave out "
        "of costly campaigns.",
        PROSPECT: "First purchase: a welcome offer or free sample with the first order, "
        "newsletter and wishlist reminders.",
    }
)


def build_segment_map(
    rules: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = SEGMENT_RULES,
) -> dict[tuple[int, int], str]:
    """(R, F) -> segment; raises ValueError unless every one of the 25 cells is covered once."""
    cells: dict[tuple[int, int], str] = {}
    for name, rs, fs in rules:
        for r in rs:
            for f in fs:
                if not (1 <= r <= N_SCORES and 1 <= f <= N_SCORES):
                    raise ValueError(f"{name}: cell R{r} F{f} is outside 1..{N_SCORES}")
                if (r, f) in cells:
                    raise ValueError(f"cell R{r} F{f} is in both {cells[(r, f)]!r} and {name!r}")
                cells[(r, f)] = name
    missing = [
        (r, f)
        for r in range(1, N_SCORES + 1)
        for f in range(1, N_SCORES + 1)
        if (r, f) not in cells
    ]
    if missing:
        raise ValueError(f"cells without a segment: {missing}")
    return cells


SEGMENT_MAP: dict[tuple[int, int], str] = build_segment_map()
# Row-major grid: index (r - 1) * 5 + (f - 1).
_SEGMENT_GRID: list[str] = [
    SEGMENT_MAP[(r, f)] for r in range(1, N_SCORES + 1) for f in range(1, N_SCORES + 1)
]
_PLAY_GRID: list[str] = [SEGMENT_PLAYS[segment] for segment in _SEGMENT_GRID]
_CELL_NAMES: list[str] = [
    f"R{r}F{f}" for r in range(1, N_SCORES + 1) for f in range(1, N_SCORES + 1)
]


def quintile_scores(values: Any, *, higher_is_better: bool = True) -> np.ndarray:
    """Scores 1..5 (int8) by the module's tie rule: 1 + floor(5 * (#strictly worse) / n).

    `values` is a 1-d array without nulls. Whole numbers in a small range (days, order counts)
    are counted with `bincount`; other values are ranked through one sort (`np.unique`).
    """
    values = np.asarray(values)
    n = values.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    low = values.min() if values.dtype.kind in "iu" else 0
    if values.dtype.kind in "iu" and int(values.max()) - int(low) <= 4 * n:
        inverse = (values - low).astype(np.int64)
        counts = np.bincount(inverse)
    else:
        _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    below = np.cumsum(counts) - counts  # values strictly smaller than each distinct value
    worse = below if higher_is_better else n - below - counts
    return (1 + worse[inverse.ravel()] * N_SCORES // n).astype(np.int8)


def score_rfm(
    summary: pl.DataFrame,
    as_of: dt.date | dt.datetime,
    customers: Any = None,
    left_out: Any = None,
) -> pl.DataFrame:
    """RFM scores and segments, one row per customer.

    `summary` needs customer_id, last_order_date (date or timestamp), order_count and total_spend
    (the columns of `sql/work/customer_summary.sql`; rows with order_count = 0 or a null
    last_order_date count as prospects). `customers` (optional, any iterable of ids) adds
    prospects: ids with no row in `summary`. `left_out` (optional, any iterable of ids): customers
    with completed orders the summary leaves out for want of an FX rate
    (`sql/work/customers_without_rate.sql`); one of them without a row in `summary` bought, so
    they are never added as a prospect: they get no row. `as_of` is the observation end; recency
    is counted in whole days from the last order's day to `as_of`'s day.

    Returns customer_id, days_since_last_order, order_count, total_spend, r_score, f_score,
    m_score (Int8, null for prospects), rfm_cell ("R5F4", null for prospects) and segment (Enum
    of SEGMENTS and "Prospect"): scored customers in the summary's row order, then the prospects.
    Sort when order matters (sorting 1M string ids cost half the scoring time).
    """
    as_of_day = as_of.date() if isinstance(as_of, dt.datetime) else as_of
    base = summary.select(
        pl.col("customer_id").cast(pl.String),
        (pl.lit(as_of_day) - pl.col("last_order_date").cast(pl.Date))
        .dt.total_days()
        .alias("days_since_last_order"),
        pl.col("order_count").cast(pl.Int64),
        pl.col("total_spend").cast(pl.Float64),
    )
    if base["customer_id"].n_unique() != base.height:
        raise ValueError("summary has duplicate customer_id values")
    if (base["days_since_last_order"] < 0).any():
        raise ValueError("a last_order_date is after as_of")
    is_active = (pl.col("order_count").fill_null(0) > 0) & pl.col(
        "days_since_last_order"
    ).is_not_null()
    active = base.filter(is_active)
    prospects = base.filter(~is_active).select("customer_id")
    if customers is not None:
        ids = pl.Series(
            "customer_id",
            list(customers) if not isinstance(customers, pl.Series) else customers,
            dtype=pl.String,
        )
        extra = pl.DataFrame({"customer_id": ids.unique(maintain_order=True)}).join(
            base.select("customer_id"), on="customer_id", how="anti", maintain_order="left"
        )
        if left_out is not None:
            bought = pl.Series(
                "customer_id",
                list(left_out) if not isinstance(left_out, pl.Series) else left_out,
                dtype=pl.String,
            )
            extra = extra.filter(~pl.col("customer_id").is_in(bought.implode()))
        prospects = pl.concat([prospects, extra])

    r = quintile_scores(active["days_since_last_order"].to_numpy(), higher_is_better=False)
    f = quintile_scores(active["order_count"].to_numpy())
    m = quintile_scores(active["total_spend"].to_numpy())
    cell = (r.astype(np.int64) - 1) * N_SCORES + (f - 1)
    scored = active.with_columns(
        pl.Series("r_score", r),
        pl.Series("f_score", f),
        pl.Series("m_score", m),
        pl.Series("rfm_cell", _CELL_NAMES, dtype=pl.String).gather(cell),
        pl.Series("segment", _SEGMENT_GRID, dtype=SEGMENT_DTYPE).gather(cell),
        pl.Series("segment_play", _PLAY_GRID, dtype=pl.String).gather(cell),
    )

    prospect_rows = prospects.join(base, on="customer_id", how="left", maintain_order="left")
    prospect_rows = prospect_rows.select(
        "customer_id",
        pl.col("days_since_last_order"),
        pl.col("order_count").fill_null(0),
        pl.col("total_spend").fill_null(0.0),
        pl.lit(None, dtype=pl.Int8).alias("r_score"),
        pl.lit(None, dtype=pl.Int8).alias("f_score"),
        pl.lit(None, dtype=pl.Int8).alias("m_score"),
        pl.lit(None, dtype=pl.String).alias("rfm_cell"),
        pl.lit(PROSPECT, dtype=SEGMENT_DTYPE).alias("segment"),
        pl.lit(SEGMENT_PLAYS[PROSPECT], dtype=pl.String).alias("segment_play"),
    )
    if prospect_rows.height == 0:
        return scored
    return pl.concat([scored, prospect_rows], how="vertical")


def segment_counts(rfm: pl.DataFrame) -> dict[str, int]:
    """Customers per segment (every segment listed, zeros included), for asset metadata."""
    counts = dict(rfm.group_by("segment").len().iter_rows())
    return {name: int(counts.get(name, 0)) for name in (*SEGMENTS, PROSPECT)}
