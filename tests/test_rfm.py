"""engagement_box.value.rfm: the tie rule, the 25-cell segment map and prospects."""

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engagement_box.value import rfm

AS_OF = dt.date(2024, 6, 30)
METRICS_DOC = Path(__file__).resolve().parents[1] / "docs" / "METRICS.md"


def documented_grid() -> dict[tuple[int, int], str]:
    """The R x F grid of docs/METRICS.md, cell by cell (a row `1-2` is R1 and R2): the segments
    as analysts read them, independent of the code's map."""
    text = METRICS_DOC.read_text(encoding="utf-8")
    table = text.split("| R \\ F |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    grid = {}
    for line in table:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        low, _, high = cells[0].partition("-")
        for r in range(int(low), int(high or low) + 1):
            for f, segment in enumerate(cells[1:], start=1):
                grid[(r, f)] = segment
    return grid


def summary(recency_days, order_count, total_spend, ids=None) -> pl.DataFrame:
    n = len(order_count)
    return pl.DataFrame(
        {
            "customer_id": ids or [f"c{i:05d}" for i in range(n)],
            "last_order_date": [
                dt.date(2024, 6, 30) - dt.timedelta(days=int(d)) for d in recency_days
            ],
            "order_count": order_count,
            "total_spend": [float(v) for v in total_spend],
        }
    )


def test_segment_map_covers_each_cell_exactly_once():
    cells = [(r, f) for r in range(1, 6) for f in range(1, 6)]
    assert sorted(rfm.SEGMENT_MAP) == cells
    covered = [(r, f) for _, rs, fs in rfm.SEGMENT_RULES for r in rs for f in fs]
    assert sorted(covered) == cells  # no cell twice, none missing
    assert set(rfm.SEGMENT_MAP.values()) == set(rfm.SEGMENTS)
    assert rfm.SEGMENT_MAP[(5, 5)] == "Champions"
    assert rfm.SEGMENT_MAP[(1, 1)] == "Hibernating"
    assert rfm.SEGMENT_MAP[(1, 5)] == "Can't Lose Them"
    assert rfm.SEGMENT_MAP[(5, 1)] == "New Customers"
    assert rfm.SEGMENT_MAP[(3, 3)] == "Need Attention"
    assert rfm.SEGMENT_MAP[(4, 1)] == "Promising"
    # every cell as docs/METRICS.md gives it (a cell moved to another segment kept the map
    # whole and passed the checks above)
    assert len(documented_grid()) == 25
    assert rfm.SEGMENT_MAP == documented_grid()


def test_build_segment_map_rejects_overlap_and_gaps():
    with pytest.raises(ValueError, match="both"):
        rfm.build_segment_map((*rfm.SEGMENT_RULES, ("Extra", (5,), (5,))))
    with pytest.raises(ValueError, match="without a segment"):
        rfm.build_segment_map(rfm.SEGMENT_RULES[1:])


def test_distinct_values_give_equal_quintiles_and_recent_is_5():
    n = 100
    days = np.arange(n)  # customer i last ordered i days ago
    out = rfm.score_rfm(summary(days, np.arange(1, n + 1), np.arange(n) * 10.0), AS_OF)
    assert out["days_since_last_order"].to_list() == list(range(n))
    assert out.group_by("r_score").len().sort("r_score")["len"].to_list() == [20] * 5
    assert out["r_score"][0] == 5 and out["r_score"][n - 1] == 1  # most recent = 5
    assert out["f_score"][n - 1] == 5 and out["f_score"][0] == 1
    assert out["m_score"].to_list() == out["f_score"].to_list()


def test_tie_rule_equal_values_same_score_documented_example():
    # 60 % ordered once, 20 % twice, 20 % five times.
    counts = [1] * 60 + [2] * 20 + [5] * 20
    out = rfm.score_rfm(summary([10] * 100, counts, [50] * 100), AS_OF)
    by = out.group_by("order_count").agg(pl.col("f_score").unique()).sort("order_count")
    assert by["f_score"].to_list() == [[1], [4], [5]]
    # Everybody tied on recency and spend: everybody scores 1.
    assert set(out["r_score"]) == {1} and set(out["m_score"]) == {1}


def test_tie_rule_independent_of_row_order_and_ids():
    rng = np.random.default_rng(7)
    n = 500
    s = summary(rng.integers(0, 30, n), rng.integers(1, 4, n), rng.integers(1, 6, n) * 10)
    a = rfm.score_rfm(s, AS_OF)
    shuffled = s.sample(fraction=1.0, shuffle=True, seed=1).with_columns(
        ("z" + pl.col("customer_id")).alias("customer_id")
    )
    b = rfm.score_rfm(shuffled, AS_OF).with_columns(pl.col("customer_id").str.slice(1))
    assert a.sort("customer_id").equals(b.sort("customer_id"))


@settings(max_examples=60)
@given(st.lists(st.integers(1, 8), min_size=1, max_size=80))
def test_scores_monotone_and_tied_values_share_score(values):
    out = rfm.score_rfm(summary([0] * len(values), values, values), AS_OF)
    pairs = sorted(zip(out["order_count"].to_list(), out["f_score"].to_list(), strict=True))
    scores = [p[1] for p in pairs]
    assert scores == sorted(scores)  # non-decreasing in the value
    for v in set(values):
        assert len({s for f, s in pairs if f == v}) == 1
    assert all(1 <= s <= 5 for s in scores)
    # The documented formula.
    n = len(values)
    for f, s in pairs:
        assert s == 1 + (5 * sum(1 for w in values if w < f)) // n


def test_prospects_have_no_scores():
    s = summary([1, 5, 9], [3, 1, 0], [90.0, 20.0, 0.0], ids=["a", "b", "c"])
    out = rfm.score_rfm(s, AS_OF, customers=["a", "b", "c", "d", "d"])
    assert out["customer_id"].to_list() == ["a", "b", "c", "d"]
    prospects = out.filter(pl.col("segment") == rfm.PROSPECT)
    assert prospects["customer_id"].to_list() == ["c", "d"]  # zero orders, no summary row
    assert prospects["r_score"].null_count() == 2 and prospects["rfm_cell"].null_count() == 2
    scored = out.filter(pl.col("segment") != rfm.PROSPECT)
    assert scored["r_score"].null_count() == 0
    counts = rfm.segment_counts(out)
    assert counts[rfm.PROSPECT] == 2 and sum(counts.values()) == 4
    assert list(counts) == [*rfm.SEGMENTS, rfm.PROSPECT]


def test_a_buyer_whose_orders_are_all_left_out_for_want_of_a_rate_is_no_prospect():
    """A profile whose completed orders are all in a currency with no FX rate has no summary
    row: it was published as a Prospect (0 orders, the first-purchase play) though it bought (a
    multi-currency review). It gets no row; one valued on other orders is scored as before."""
    s = summary([1, 5], [3, 1], [90.0, 20.0], ids=["a", "b"])
    out = rfm.score_rfm(s, AS_OF, customers=["a", "b", "p", "x"], left_out=["b", "x", "guest"])
    assert out["customer_id"].to_list() == ["a", "b", "p"]
    assert out.filter(pl.col("segment") == rfm.PROSPECT)["customer_id"].to_list() == ["p"]
    assert out.filter(pl.col("customer_id") == "b")["f_score"].null_count() == 0
    # no one left out: the same rows as without the argument
    assert rfm.score_rfm(s, AS_OF, customers=["a", "p"], left_out=[]).equals(
        rfm.score_rfm(s, AS_OF, customers=["a", "p"])
    )


def test_segments_follow_the_map():
    rng = np.random.default_rng(11)
    n = 2000
    out = rfm.score_rfm(
        summary(rng.integers(0, 400, n), rng.geometric(0.4, n), rng.gamma(2, 40, n)), AS_OF
    )
    documented = documented_grid()
    for r, f, seg, cell in out.select("r_score", "f_score", "segment", "rfm_cell").iter_rows():
        assert seg == documented[(r, f)] and cell == f"R{r}F{f}"


def test_every_row_carries_its_segments_play():
    """`segment_play` is what to do with the customer: the play of their segment's audience
    file, prospects' too (an analyst found the segment's play nowhere in the warehouse)."""
    rng = np.random.default_rng(12)
    n = 500
    s = summary(rng.integers(0, 400, n), rng.geometric(0.4, n), rng.gamma(2, 40, n))
    out = rfm.score_rfm(s, AS_OF, customers=["prospect-1"])
    assert rfm.PROSPECT in set(out["segment"].cast(pl.String)) and out["segment"].n_unique() > 5
    for segment, play in out.select(pl.col("segment").cast(pl.String), "segment_play").iter_rows():
        assert play == rfm.SEGMENT_PLAYS[segment], segment


def test_recency_counts_calendar_days_and_rejects_future_orders():
    s = summary([0], [1], [10.0])
    assert rfm.score_rfm(s, dt.datetime(2024, 6, 30, 1))["days_since_last_order"][0] == 0
    with pytest.raises(ValueError, match="after as_of"):
        rfm.score_rfm(s, dt.date(2024, 6, 1))
    with pytest.raises(ValueError, match="duplicate"):
        rfm.score_rfm(pl.concat([s, s]), AS_OF)


def test_a_segment_of_several_rules_is_one_segment():
    """A segment that is not one rectangle of the R x F grid is given as several rules of one
    name: it is one segment (one ENUM value, one audience), where polars refused the ENUM with
    "Enum categories must be unique", naming no segment (a review)."""
    from engagement_box.value.rfm import SEGMENT_RULES, SEGMENTS, build_segment_map, segment_names

    split = tuple(
        rule
        for name, rs, fs in SEGMENT_RULES
        for rule in ([(name, rs, (f,)) for f in fs] if name == "Champions" else [(name, rs, fs)])
    )
    assert len(split) == len(SEGMENT_RULES) + 1
    assert segment_names(split) == SEGMENTS
    assert build_segment_map(split) == build_segment_map(SEGMENT_RULES)
