"""Engagement metrics on small hand-computed cases: social points, CIV, CKV, CEV, quadrants."""

import math
from datetime import date, datetime

import numpy as np
import polars as pl
import pytest

from engagement_box.engagement.metrics import (
    QUADRANTS,
    EngagementSettings,
    customer_influence_value,
    customer_knowledge_value,
    engagement_values,
    influence_matrix,
    social_points,
)
from engagement_box.engagement.referral import annuity
from engagement_box.value.rfm import PROSPECT, SEGMENTS
from tests.engagement_frames import (
    EMPTY_REFERRALS,
    EMPTY_REVIEWS,
    EMPTY_SOCIAL,
    clv_frame,
    referral_frame,
    review_frame,
    social_frame,
)

# ---- social points ------------------------------------------------------------------------


def test_social_points_per_platform_and_mention_choice():
    social = social_frame(
        [
            ("a", "b", "like", "instagram"),
            ("a", "b", "comment", "instagram"),
            ("a", "b", "share", "instagram"),
            ("a", "b", "mention", "twitter"),
            ("a", None, "tweet", "twitter"),
            (None, "a", "retweet", "twitter"),  # unresolved actor earns nobody points
        ]
    )
    points = social_points(social, EngagementSettings()).row(0, named=True)
    assert points["customer_id"] == "a"
    assert points["social_points_instagram"] == 16
    assert points["social_points_twitter"] == 6
    assert points["social_points"] == 22


def test_social_points_platform_override():
    settings = EngagementSettings(social_points_by_platform={"pinterest": {"pin": 3.0}})
    social = social_frame(
        [
            ("a", "b", "pin", "pinterest"),
            ("a", "b", "like", "pinterest"),
            ("a", "b", "pin", "instagram"),
        ]
    )
    points = social_points(social, settings).row(0, named=True)
    assert points["social_points_pinterest"] == 4  # pin 3 + like falls back to 1
    assert points["social_points_instagram"] == 1


# ---- CIV: the ledger ----------------------------------------------------------------------


def _by_id(frame: pl.DataFrame) -> dict[str, dict]:
    return {r["customer_id"]: r for r in frame.iter_rows(named=True)}


def test_one_like_moves_only_the_attributed_share_and_it_leaves_the_liker():
    # The case: a customer with CLV 170 likes a post. Only phi = 0.1 of 170 moves.
    social = social_frame([("J", "I", "like", "instagram")])
    civ = _by_id(customer_influence_value(social, clv_frame({"I": 20.0, "J": 170.0}),
                                          EngagementSettings()))  # fmt: skip
    assert civ["I"]["civ_gained"] == pytest.approx(17.0) and civ["I"]["civ_ceded"] == 0.0
    assert civ["J"]["civ_ceded"] == pytest.approx(17.0) and civ["J"]["civ"] == pytest.approx(-17)
    assert civ["I"]["civ"] + civ["J"]["civ"] == pytest.approx(0.0)


def test_star_influence_graph():
    # Three leaves react to the hub's content; the hub reacts to nobody.
    social = social_frame(
        [(leaf, "H", "like", "instagram") for leaf in ("L1", "L2", "L3")]
        + [("L1", "H", "comment", "instagram")]
    )
    clv = clv_frame({"H": 5.0, "L1": 10.0, "L2": 20.0, "L3": 30.0})
    civ = _by_id(customer_influence_value(social, clv, EngagementSettings(civ_attribution_share=1)))
    assert civ["H"]["civ"] == pytest.approx(60.0)
    assert civ["H"]["cie"] == pytest.approx(1.0)
    for leaf, value in (("L1", 10.0), ("L2", 20.0), ("L3", 30.0)):
        assert civ[leaf]["civ"] == pytest.approx(-value) and civ[leaf]["cie"] == 0.0


def test_chain_influence_indirect_share():
    # B reacts to A, C reacts to B: S_AB = b, S_BC = b, S_AC = b^2.
    beta, phi = 0.5, 0.2
    social = social_frame([("B", "A", "like", "instagram"), ("C", "B", "share", "twitter")])
    clv = clv_frame({"A": 0.0, "B": 30.0, "C": 90.0})
    settings = EngagementSettings(civ_beta=beta, civ_attribution_share=phi)
    out = _by_id(engagement_values(clv, EMPTY_REVIEWS, social, EMPTY_REFERRALS, settings))
    share_ac = beta**2 / (beta + beta**2)
    assert out["A"]["civ_gained"] == pytest.approx(phi * (30.0 + share_ac * 90.0))
    assert out["B"]["civ_gained"] == pytest.approx(phi * (1 - share_ac) * 90.0)
    assert out["B"]["civ_ceded"] == pytest.approx(phi * 30.0)
    assert out["C"]["civ"] == pytest.approx(-phi * 90.0)
    total = 2 * beta + beta**2
    assert out["A"]["cie"] == pytest.approx((beta + beta**2) / total)
    assert out["B"]["cie"] == pytest.approx(beta / total)


def test_influence_loops_do_not_count():
    # Item 6: A and B react only to each other. A -> B -> A gives S_AA > 0, but nobody is
    # credited with their own value; each direct direction counts once.
    social = social_frame([("A", "B", "like", "instagram"), ("B", "A", "like", "instagram")])
    clv = clv_frame({"A": 100.0, "B": 10.0})
    civ = _by_id(customer_influence_value(
        social, clv, EngagementSettings(civ_max_order=10, civ_attribution_share=1.0)
    ))  # fmt: skip
    assert civ["A"]["civ_gained"] == pytest.approx(10.0)
    assert civ["B"]["civ_gained"] == pytest.approx(100.0)
    assert civ["A"]["civ"] == pytest.approx(-90.0) and civ["B"]["civ"] == pytest.approx(90.0)


def test_cie_leaves_loops_out():
    # A and B react to each other, C reacts to A. S_AA = S_BB = b^2 are loops: A's influence
    # over others is S_AB + S_AC = 2b, B's is S_BA + S_BC = b + b^2 (over C through A).
    b = 0.5
    social = social_frame(
        [("B", "A", "like", "instagram"), ("A", "B", "like", "instagram"),
         ("C", "A", "like", "instagram")]
    )  # fmt: skip
    clv = clv_frame({"A": 10.0, "B": 10.0, "C": 10.0})
    civ = _by_id(customer_influence_value(social, clv, EngagementSettings(civ_beta=b)))
    assert civ["A"]["cie"] == pytest.approx(2 * b / (3 * b + b**2))
    assert civ["B"]["cie"] == pytest.approx((b + b**2) / (3 * b + b**2))
    assert civ["C"]["cie"] == 0.0


def test_influence_moves_value_only_among_the_customers_of_the_as_of():
    # N reacts and is reacted to, but is not a customer at the as-of (a profile signed up
    # later). X's reactions to A and N: all of X's attributed value goes to A, none to N's
    # missing row, and civ sums to 0 over the rows there are.
    social = social_frame(
        [("X", "A", "like", "instagram"), ("X", "N", "like", "instagram"),
         ("N", "A", "comment", "instagram")]
    )  # fmt: skip
    out = engagement_values(
        clv_frame({"A": 10.0, "X": 100.0}),
        EMPTY_REVIEWS,
        social,
        EMPTY_REFERRALS,
        EngagementSettings(civ_attribution_share=0.5),
        as_of=date(2024, 6, 30),
        customers=pl.DataFrame({"customer_id": ["A", "X"]}),
    )
    row = _by_id(out)
    assert set(row) == {"A", "X"}
    assert row["X"]["civ_ceded"] == pytest.approx(50.0)
    assert row["A"]["civ_gained"] == pytest.approx(50.0) and row["A"]["cie"] == 1.0
    assert out["civ"].sum() == pytest.approx(0.0, abs=1e-12)


def test_truncated_series_matches_the_inverse():
    rng = np.random.default_rng(7)
    n = 12
    i = rng.integers(0, n, 60)
    j = rng.integers(0, n, 60)
    keep = i != j
    edges = pl.DataFrame({"i": i[keep], "j": j[keep], "weight": np.ones(keep.sum())})
    beta = 0.6
    S = influence_matrix(edges, n, EngagementSettings(civ_beta=beta, civ_max_order=80)).toarray()
    R = np.zeros((n, n))
    np.add.at(R, (i[keep], j[keep]), 1.0)
    col = R.sum(axis=0)
    W = np.divide(R, col, out=np.zeros_like(R), where=col > 0)
    expected = np.linalg.inv(np.eye(n) - beta * W) - np.eye(n)
    np.testing.assert_allclose(S, expected, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 4])
def test_civ_matches_dense_definition(order):
    rng = np.random.default_rng(11)
    ids = [f"c{k}" for k in range(15)]
    actors = rng.integers(0, 15, 80)
    targets = rng.integers(0, 15, 80)
    social = social_frame(
        [(ids[a], ids[t], "like", "instagram") for a, t in zip(actors, targets, strict=True)]
    )
    clv_values = rng.gamma(2.0, 50.0, 15)
    clv = clv_frame(dict(zip(ids, clv_values, strict=True)))
    beta, phi = 0.4, 0.3
    got = customer_influence_value(
        social,
        clv,
        EngagementSettings(civ_beta=beta, civ_max_order=order, civ_attribution_share=phi),
    )
    # dense reference, straight from the definitions
    R = np.zeros((15, 15))
    for a, t in zip(actors, targets, strict=True):
        if a != t:
            R[t, a] += 1.0
    col = R.sum(axis=0)
    W = np.divide(R, col, out=np.zeros_like(R), where=col > 0)
    S = sum(beta**k * np.linalg.matrix_power(W, k) for k in range(1, order + 1))
    S_off = S - np.diag(np.diag(S))
    denom = S_off.sum(axis=0)
    share = np.divide(S_off, denom, out=np.zeros_like(S_off), where=denom > 0)
    gained = share @ (phi * clv_values)
    ceded = np.where(denom > 0, phi * clv_values, 0.0)
    cie_expected = S_off.sum(axis=1) / S_off.sum()
    by_id = _by_id(got)
    for k, cid in enumerate(ids):
        if cid in by_id:
            assert by_id[cid]["civ_gained"] == pytest.approx(gained[k], abs=1e-9)
            assert by_id[cid]["civ_ceded"] == pytest.approx(ceded[k], abs=1e-9)
            assert by_id[cid]["cie"] == pytest.approx(cie_expected[k], abs=1e-12)
        else:
            assert gained[k] == 0.0 and ceded[k] == 0.0
    assert got["civ"].sum() == pytest.approx(0.0, abs=1e-9)


# ---- CKV ------------------------------------------------------------------------------------


def test_customer_with_only_reviews():
    reviews = review_frame([("R", 0, True), ("R", 3, False), (None, 50, True)])
    settings = EngagementSettings(ckv_value_per_review=2.0)
    ckv = customer_knowledge_value(reviews, settings)
    expected = 2.0 * (1.0 + 0.5 * (1.0 + math.log(4.0)))
    assert ckv["ckv_reviews"].item() == pytest.approx(expected)
    out = engagement_values(clv_frame({}), reviews, EMPTY_SOCIAL, EMPTY_REFERRALS, settings)
    row = out.row(0, named=True)
    assert row["customer_id"] == "R" and not row["buyer"]
    assert (row["clv"], row["crv"], row["civ"], row["ckv_ideas"]) == (0.0, 0.0, 0.0, 0.0)
    assert row["cev"] == pytest.approx(expected)
    assert row["review_count"] == 2


# ---- quadrants ------------------------------------------------------------------------------


def test_quadrant_names_never_collide_with_rfm_segments():
    assert not set(QUADRANTS) & {*SEGMENTS, PROSPECT}
    assert all(q.startswith("CEV ") for q in QUADRANTS)


def test_quadrants_are_cut_on_the_customers_they_describe():
    # Buyers A..D; prospects P1..P4 (no CLV) would pull the CLV median down to 2.5 and make D
    # "high"; among buyers the median is 30. Only A and C have referred anyone: the CRV cut is
    # their median, not the 0 of the many who never referred.
    clv = clv_frame({"A": 100.0, "B": 80.0, "C": 20.0, "D": 10.0})
    referrals = referral_frame(
        [
            *[{"referral_id": f"a{k}", "referrer_customer_id": "A", "referee_customer_id": f"x{k}"}
              for k in range(3)],
            {"referral_id": "c1", "referrer_customer_id": "C", "referee_customer_id": "y1"},
        ]
    )  # fmt: skip
    customers = pl.DataFrame({"customer_id": ["A", "B", "C", "D", "P1", "P2", "P3", "P4"]})
    out = engagement_values(
        clv,
        EMPTY_REVIEWS,
        EMPTY_SOCIAL,
        referrals,
        EngagementSettings(crv_acquisition_saved_type1=30.0),
        as_of=date(2024, 6, 30),
        customers=customers,
    )
    q = dict(zip(out["customer_id"], out["quadrant"], strict=True))
    assert q["A"] == "CEV Champions"
    assert q["B"] == "CEV Affluents"
    assert q["D"] == "CEV Misers" and q["P1"] == "CEV Misers"
    row = _by_id(out)
    assert row["C"]["crv"] < row["A"]["crv"] and not row["C"]["crv_high"]
    assert not row["P1"]["buyer"] and not row["P1"]["clv_high"]
    # non-referrers get a small forward CRV (the population rate) but never "high CRV"
    assert row["B"]["crv"] > 0 and not row["B"]["crv_high"]
    assert out["quadrant_play"].null_count() == 0


def test_an_unvalued_customer_has_no_clv_cev_or_quadrant_and_keeps_what_was_measured():
    """A profile whose completed orders all lack an FX rate (`unvalued`) was a CEV Miser at CLV
    0. Their CLV was never measured: clv, cev, the quadrant and its play are NULL, and they are
    never high CLV. What was measured stays: their CKV, the CIV they gain from those they
    influence, CRV. They cede no CIV (no value of theirs to move), so CIV still sums to 0. A
    prospect beside them (no order at all) is a Miser at CLV 0 as before; and a NULL CLV not
    named unvalued (a caller's mistake) is still 0."""
    clv = clv_frame({"A": 100.0, "B": 40.0})
    social = social_frame(
        [("A", "U", "comment", "twitter"), ("U", "A", "like", "twitter"), ("B", "A", "like", "x")]
    )
    reviews = review_frame([("U", 2, True)])
    customers = pl.DataFrame({"customer_id": ["A", "B", "P", "U"]})
    settings = EngagementSettings(ckv_value_per_review=2.0)
    out = engagement_values(
        clv, reviews, social, EMPTY_REFERRALS, settings, as_of=date(2024, 6, 30),
        customers=customers, unvalued=pl.Series(["U", "A"]),  # A has a CLV: valued
    )  # fmt: skip
    row = _by_id(out)
    u = row["U"]
    assert (u["clv"], u["cev"], u["quadrant"], u["quadrant_play"]) == (None, None, None, None)
    assert not u["buyer"] and not u["clv_high"]
    assert u["ckv"] > 0 and u["civ_gained"] > 0 and u["civ_ceded"] == 0.0
    assert u["crv"] is not None
    assert row["A"]["clv"] == 100.0 and row["A"]["quadrant"] is not None
    assert (row["P"]["clv"], row["P"]["quadrant"]) == (0.0, "CEV Misers")
    assert out["clv"].null_count() == out["cev"].null_count() == 1
    assert out["civ"].sum() == pytest.approx(0.0, abs=1e-9)
    valued = out.filter(pl.col("clv").is_not_null())
    np.testing.assert_allclose(
        valued["cev"], valued["clv"] + valued["crv"] + valued["civ"] + valued["ckv"]
    )
    # without `unvalued` (the release before): U is a Miser at CLV 0
    before = _by_id(
        engagement_values(
            clv,
            reviews,
            social,
            EMPTY_REFERRALS,
            settings,
            as_of=date(2024, 6, 30),
            customers=customers,
        )  # fmt: skip
    )
    assert (before["U"]["clv"], before["U"]["quadrant"]) == (0.0, "CEV Misers")


def test_an_unvalued_costly_referrer_stays_one():
    """CEV Costly Referrers holds whatever the CLV: an unvalued referrer whose referrals are
    expected to cost more than they bring is still one (their reward wants a review); an
    unvalued customer with a high CRV is no Advocate (that is a claim of a low CLV)."""
    from engagement_box.engagement.quadrants import with_quadrants

    frame = pl.DataFrame(
        {
            "customer_id": ["costly", "high_crv"],
            "buyer": [False, False],
            "clv": [None, None],
            "crv": [-3.0, 9.0],
            "crv_referrals": [2, 2],
        },
        schema_overrides={"clv": pl.Float64},
    )
    out = with_quadrants(frame, clv_cut=10.0, crv_cut=1.0)
    assert out["quadrant"].to_list() == ["CEV Costly Referrers", None]
    assert out["crv_high"].to_list() == [False, True]
    assert out["clv_high"].to_list() == [False, False]


def test_the_cev_check_allows_a_null_cev_only_with_a_null_clv():
    """`cev_is_the_sum`: CEV NULL with CLV NULL (unvalued) passes and is counted; a NULL CEV
    beside a CLV, or a NULL CLV beside a CEV, or a NULL CRV, fails it; and so does a NULL CLV
    and CEV of a customer who is not unvalued (a CLV lost on the way: a code review found the
    check took every NULL CLV for an unvalued customer)."""
    from assets.engagement import _cev_check

    unvalued = pl.Series(["b"])
    values = pl.DataFrame(
        {
            "customer_id": ["a", "b"],
            "clv": [10.0, None],
            "crv": [1.0, 2.0],
            "civ": [0.0, 0.0],
            "civ_ceded": [0.0, 0.0],
            "ckv": [0.5, 0.5],
            "cev": [11.5, None],
        }
    )
    check = _cev_check(values, unvalued)
    assert check.passed and check.metadata["customers_unvalued"].value == 1
    assert "1 customer(s) unvalued" in check.description
    for column, row, value in (("cev", 0, None), ("cev", 1, 2.5), ("crv", 0, None)):
        broken = values.with_columns(
            pl.when(pl.int_range(pl.len()) == row)
            .then(pl.lit(value, dtype=pl.Float64))
            .otherwise(pl.col(column))
            .alias(column)
        )
        assert not _cev_check(broken, unvalued).passed, (column, row, value)
    lost = values.with_columns(clv=pl.lit(None, pl.Float64), cev=pl.lit(None, pl.Float64))
    assert not _cev_check(lost, unvalued).passed


# ---- CEV: the sum of its parts, and no dollar counted twice ---------------------------------


def test_sum_of_cev_counts_no_customer_value_twice():
    rng = np.random.default_rng(5)
    ids = [f"c{k:02d}" for k in range(40)]
    social = social_frame(
        [(ids[a], ids[t], "comment", "twitter")
         for a, t in zip(rng.integers(0, 40, 150), rng.integers(0, 40, 150), strict=True)]
    )  # fmt: skip
    referrals = referral_frame(
        [{"referral_id": f"r{k}", "referrer_customer_id": ids[k], "referee_customer_id": ids[k + 20]}
         for k in range(10)]
    )  # fmt: skip
    clv = clv_frame(dict(zip(ids, rng.gamma(2.0, 40.0, 40), strict=True)))
    reviews = review_frame([(ids[k], k, k % 2 == 0) for k in range(0, 40, 3)])
    for phi in (0.1, 1.0):
        out = engagement_values(
            clv, reviews, social, referrals, EngagementSettings(civ_attribution_share=phi),
            as_of=date(2024, 12, 31),
        )  # fmt: skip
        np.testing.assert_allclose(out["cev"], out["clv"] + out["crv"] + out["civ"] + out["ckv"])
        # civ only moves value between customers: the identity the totals obey
        assert out["cev"].sum() == pytest.approx(
            out["clv"].sum() + out["crv"].sum() + out["ckv"].sum(), rel=1e-12
        )
        assert out["civ_gained"].sum() == pytest.approx(out["civ_ceded"].sum(), rel=1e-12)
        assert (out["clv"] - out["civ_ceded"]).min() >= 0


# ---- the worked example of docs/METRICS.md ---------------------------------------------------


def test_worked_example_of_metrics_md():
    """The numbers in docs/METRICS.md, "A worked example"."""
    at = datetime(2025, 4, 1)
    referrals = referral_frame(
        [
            {"referral_id": "r1", "referrer_customer_id": "A", "referee_customer_id": "B",
             "referred_at": datetime(2025, 2, 20), "converted_at": datetime(2025, 3, 1),
             "referrer_reward": 10.0, "referee_reward": 10.0, "would_have_joined_anyway": False},
            {"referral_id": "r2", "referrer_customer_id": "A", "referee_customer_id": "C",
             "referred_at": at, "converted_at": at, "referrer_reward": 10.0,
             "referee_reward": 10.0, "would_have_joined_anyway": True},
            {"referral_id": "r3", "referrer_customer_id": "B", "referee_customer_id": "D",
             "referred_at": at, "converted_at": at, "referrer_reward": 10.0,
             "referee_reward": 10.0, "would_have_joined_anyway": None},
        ]
    )  # fmt: skip
    social = social_frame(
        [
            ("E", "A", "like", "instagram"),
            ("B", "A", "like", "instagram"),
            ("D", "B", "comment", "twitter"),
            ("D", "A", "comment", "twitter"),
        ]
    )
    reviews = review_frame([("C", 3, True)])
    clv = clv_frame({"A": 200.0, "B": 120.0, "C": 80.0, "D": 50.0, "E": 100.0})
    since = pl.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D", "E", "P"],
            "since": [date(2025, 1, 1), date(2025, 3, 1), date(2025, 4, 1), date(2025, 4, 1),
                      date(2025, 1, 1), date(2025, 11, 1)],
        }
    )  # fmt: skip
    settings = EngagementSettings(
        crv_acquisition_saved_type1=30.0, crv_acquisition_saved_type2=30.0,
        crv_value_credibility=2.0, civ_attribution_share=0.1,
    )  # fmt: skip
    out = engagement_values(
        clv, reviews, social, referrals, settings, as_of=date(2025, 12, 31),
        customers=since.select("customer_id"), customer_since=since,
    )  # fmt: skip
    row = _by_id(out)
    # CRV realized: 130 (B, type one), 30 - 20 = 10 (C, type two), 0.5*80 + 0.5*30 - 20 = 35
    assert row["A"]["crv_realized"] == pytest.approx(140.0)
    assert row["B"]["crv_realized"] == pytest.approx(35.0)
    # value of one referral, kappa = 2 toward mu = 175 / 3
    mu = 175 / 3
    assert row["A"]["crv_value_per_referral"] == pytest.approx((140 + 2 * mu) / 4)
    assert row["B"]["crv_value_per_referral"] == pytest.approx((35 + 2 * mu) / 3)
    assert row["E"]["crv_value_per_referral"] == pytest.approx(mu)
    # The NBD fit on counts A 2, B 1, others 0 over 365, 306, 275, 275, 365, 61 days: six
    # customers show no spread in referral rates, so the fit is the Poisson limit, one pooled
    # rate 3 / 54.9 months for everyone.
    a12 = annuity(settings)
    assert a12 == pytest.approx(11.2551, abs=1e-4)
    rate = 3 / (1647 / 30)
    for cid in ("A", "B", "C", "D", "E", "P"):
        assert row[cid]["crv_expected_referrals"] == pytest.approx(12 * rate)
        assert row[cid]["crv"] == pytest.approx(rate * row[cid]["crv_value_per_referral"] * a12)
    assert row["A"]["crv"] == pytest.approx(39.4645, abs=1e-4)
    assert row["B"]["crv"] == pytest.approx(31.0933, abs=1e-4)
    assert row["E"]["crv"] == pytest.approx(35.8768, abs=1e-4)
    # CIV ledger, phi = 0.1: E's 10 and B's 12 go to A; D's 5 splits 0.6 to A, 0.4 to B.
    assert row["A"]["civ"] == pytest.approx(25.0)
    assert row["B"]["civ"] == pytest.approx(2.0 - 12.0)
    assert row["D"]["civ"] == pytest.approx(-5.0)
    assert row["E"]["civ"] == pytest.approx(-10.0)
    assert row["C"]["ckv"] == pytest.approx(1 + math.log(4))
    assert out["civ"].sum() == pytest.approx(0.0, abs=1e-12)
    # quadrants: CLV median among the 5 buyers is 100 (with P at 0 it would be 90 and E "high")
    q = dict(zip(out["customer_id"], out["quadrant"], strict=True))
    assert q == {
        "A": "CEV Champions", "B": "CEV Affluents", "C": "CEV Misers",
        "D": "CEV Misers", "E": "CEV Misers", "P": "CEV Misers",
    }  # fmt: skip
