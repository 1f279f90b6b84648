"""Engagement metrics on small hand-computed cases."""

import math
from datetime import datetime

import numpy as np
import polars as pl
import pytest

from engagement_box.engagement.metrics import (
    EngagementSettings,
    credited_referrals,
    customer_influence_value,
    customer_knowledge_value,
    engagement_values,
    influence_matrix,
    social_points,
)

T0 = datetime(2024, 1, 1)
T1 = datetime(2024, 2, 1)
NO_DISCOUNT = EngagementSettings(crv_discount_rate=0.0)


def _clv(values: dict[str, float]) -> pl.DataFrame:
    return pl.DataFrame({"customer_id": list(values), "clv": list(values.values())})


def _social(rows: list[tuple[str, str | None, str, str]]) -> pl.DataFrame:
    """rows: (actor, target, event_type, platform)."""
    return pl.DataFrame(
        {
            "actor_customer_id": [r[0] for r in rows],
            "target_customer_id": [r[1] for r in rows],
            "event_type": [r[2] for r in rows],
            "platform": [r[3] for r in rows],
        },
        schema={
            "actor_customer_id": pl.String,
            "target_customer_id": pl.String,
            "event_type": pl.String,
            "platform": pl.String,
        },
    )


def _referrals(rows: list[dict]) -> pl.DataFrame:
    base = {
        "referred_at": T0,
        "converted_at": T0,
        "referrer_reward": 5.0,
        "referee_reward": 5.0,
        "would_have_joined_anyway": False,
    }
    return pl.DataFrame(
        [base | r for r in rows],
        schema={
            "referral_id": pl.String,
            "referrer_customer_id": pl.String,
            "referee_customer_id": pl.String,
            "referred_at": pl.Datetime("us"),
            "converted_at": pl.Datetime("us"),
            "referrer_reward": pl.Float64,
            "referee_reward": pl.Float64,
            "would_have_joined_anyway": pl.Boolean,
        },
    )


EMPTY_REVIEWS = pl.DataFrame(
    schema={"customer_id": pl.String, "helpful_votes": pl.Int64, "verified_purchase": pl.Boolean}
)
EMPTY_SOCIAL = _social([])
EMPTY_REFERRALS = _referrals([])


# ---- social points ------------------------------------------------------------------------


def test_social_points_per_platform_and_mention_choice():
    social = _social(
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
    social = _social(
        [
            ("a", "b", "pin", "pinterest"),
            ("a", "b", "like", "pinterest"),
            ("a", "b", "pin", "instagram"),
        ]
    )
    points = social_points(social, settings).row(0, named=True)
    assert points["social_points_pinterest"] == 4  # pin 3 + like falls back to 1
    assert points["social_points_instagram"] == 1


# ---- CRV ----------------------------------------------------------------------------------


def test_crv_referral_chain():
    # A -> B -> C; values: A - a - M + ACQ1 with rewards 10, ACQ1 = 10, M = 2.
    settings = EngagementSettings(
        crv_discount_rate=0.0, crv_acquisition_saved_type1=10.0, crv_retention_cost=2.0
    )
    referrals = _referrals(
        [
            {"referral_id": "r1", "referrer_customer_id": "A", "referee_customer_id": "B"},
            {"referral_id": "r2", "referrer_customer_id": "B", "referee_customer_id": "C"},
        ]
    )
    out = engagement_values(
        _clv({"A": 100.0, "B": 50.0, "C": 30.0}), EMPTY_REVIEWS, EMPTY_SOCIAL, referrals, settings
    )
    crv = dict(zip(out["customer_id"], out["crv"], strict=True))
    assert crv == pytest.approx({"A": 50 - 10 - 2 + 10, "B": 30 - 10 - 2 + 10, "C": 0.0})
    assert out.filter(pl.col("customer_id") == "A")["crv_referrals"].item() == 1


def test_crv_filters_and_referee_counts_once():
    referrals = _referrals(
        [
            # B converted through r2 first (earlier conversion), r1 loses even though sent earlier
            {
                "referral_id": "r1",
                "referrer_customer_id": "A",
                "referee_customer_id": "B",
                "converted_at": T1,
            },
            {"referral_id": "r2", "referrer_customer_id": "D", "referee_customer_id": "B"},
            # self-referral, not converted, not incentivized: all ignored
            {"referral_id": "r3", "referrer_customer_id": "A", "referee_customer_id": "A"},
            {
                "referral_id": "r4",
                "referrer_customer_id": "A",
                "referee_customer_id": "E",
                "converted_at": None,
            },
            {
                "referral_id": "r5",
                "referrer_customer_id": "A",
                "referee_customer_id": "F",
                "referrer_reward": 0.0,
                "referee_reward": 0.0,
            },
            # unresolved referee
            {"referral_id": "r6", "referrer_customer_id": "A", "referee_customer_id": None},
        ]
    )
    credited = credited_referrals(referrals, _clv({"B": 40.0, "E": 99.0, "F": 99.0}), NO_DISCOUNT)
    assert credited["referral_id"].to_list() == ["r2"]
    assert credited["crv_value"].item() == pytest.approx(40.0 - 10.0)


def test_crv_same_conversion_time_tie_goes_to_smallest_referral_id():
    referrals = _referrals(
        [
            {"referral_id": "r9", "referrer_customer_id": "A", "referee_customer_id": "B"},
            {"referral_id": "r1", "referrer_customer_id": "C", "referee_customer_id": "B"},
        ]
    )
    credited = credited_referrals(referrals, _clv({"B": 40.0}), NO_DISCOUNT)
    assert credited["referrer_customer_id"].to_list() == ["C"]


def test_crv_type_two_and_unknown_share():
    settings = EngagementSettings(
        crv_discount_rate=0.0,
        crv_acquisition_saved_type1=10.0,
        crv_acquisition_saved_type2=20.0,
        crv_unknown_type2_share=0.25,
    )
    referrals = _referrals(
        [
            {
                "referral_id": "r1",
                "referrer_customer_id": "A",
                "referee_customer_id": "B",
                "would_have_joined_anyway": True,
            },
            {
                "referral_id": "r2",
                "referrer_customer_id": "A",
                "referee_customer_id": "C",
                "would_have_joined_anyway": None,
            },
        ]
    )
    credited = credited_referrals(referrals, _clv({"B": 100.0, "C": 100.0}), settings)
    values = dict(zip(credited["referral_id"], credited["crv_value"], strict=True))
    assert values["r1"] == pytest.approx(20.0)  # type two: ACQ2 only
    assert values["r2"] == pytest.approx(0.75 * (100 - 10 + 10) + 0.25 * 20)


def test_crv_unknown_share_defaults_to_observed_share():
    referrals = _referrals(
        [
            {
                "referral_id": "r1",
                "referrer_customer_id": "A",
                "referee_customer_id": "B",
                "would_have_joined_anyway": True,
            },
            {
                "referral_id": "r2",
                "referrer_customer_id": "A",
                "referee_customer_id": "C",
                "would_have_joined_anyway": False,
            },
            {
                "referral_id": "r3",
                "referrer_customer_id": "A",
                "referee_customer_id": "D",
                "would_have_joined_anyway": None,
            },
        ]
    )
    credited = credited_referrals(referrals, _clv({"D": 50.0}), NO_DISCOUNT)
    assert credited.filter(pl.col("referral_id") == "r3")["p_type2"].item() == 0.5


def test_crv_discount_by_years_to_as_of():
    settings = EngagementSettings(crv_discount_rate=0.10)
    referrals = _referrals(
        [{"referral_id": "r1", "referrer_customer_id": "A", "referee_customer_id": "B"}]
    )
    as_of = datetime(2026, 1, 1)  # 731 days later
    credited = credited_referrals(referrals, _clv({"B": 110.0}), settings, as_of=as_of)
    years = 731 / 365.25
    assert credited["crv_value"].item() == pytest.approx(100.0 / 1.1**years)


# ---- CIV ----------------------------------------------------------------------------------


def test_star_influence_graph():
    # Three leaves react to the hub's content; the hub reacts to nobody.
    social = _social(
        [(leaf, "H", "like", "instagram") for leaf in ("L1", "L2", "L3")]
        + [("L1", "H", "comment", "instagram")]
    )
    clv = _clv({"H": 5.0, "L1": 10.0, "L2": 20.0, "L3": 30.0})
    civ = customer_influence_value(
        social,
        clv,
        EMPTY_REFERRALS.head(0).select("referrer_customer_id", "referee_customer_id"),
        EngagementSettings(),
    )
    by_id = {r["customer_id"]: r for r in civ.iter_rows(named=True)}
    assert by_id["H"]["civ"] == pytest.approx(60.0)
    assert by_id["H"]["cie"] == pytest.approx(1.0)
    for leaf in ("L1", "L2", "L3"):
        assert by_id[leaf]["civ"] == 0.0 and by_id[leaf]["cie"] == 0.0


def test_chain_influence_indirect_share():
    # B reacts to A, C reacts to B: S_AB = b, S_BC = b, S_AC = b^2.
    beta = 0.5
    social = _social([("B", "A", "like", "instagram"), ("C", "B", "share", "twitter")])
    clv = _clv({"A": 0.0, "B": 30.0, "C": 90.0})
    out = engagement_values(
        clv, EMPTY_REVIEWS, social, EMPTY_REFERRALS, EngagementSettings(civ_beta=beta)
    )
    civ = dict(zip(out["customer_id"], out["civ"], strict=True))
    cie = dict(zip(out["customer_id"], out["cie"], strict=True))
    share_ac = beta**2 / (beta + beta**2)
    assert civ["A"] == pytest.approx(30.0 + share_ac * 90.0)
    assert civ["B"] == pytest.approx((1 - share_ac) * 90.0)
    assert civ["C"] == 0.0
    total = 2 * beta + beta**2
    assert cie["A"] == pytest.approx((beta + beta**2) / total)
    assert cie["B"] == pytest.approx(beta / total)


def test_no_double_counting_between_crv_and_civ():
    # A referred B (credited CRV) and B also reacts to A's content: A gets no CIV for B.
    social = _social([("B", "A", "like", "instagram"), ("C", "B", "like", "instagram")])
    referrals = _referrals(
        [{"referral_id": "r1", "referrer_customer_id": "A", "referee_customer_id": "B"}]
    )
    clv = _clv({"A": 0.0, "B": 30.0, "C": 90.0})
    settings = EngagementSettings(civ_beta=0.5, crv_discount_rate=0.0)
    out = engagement_values(clv, EMPTY_REVIEWS, social, referrals, settings)
    row = {r["customer_id"]: r for r in out.iter_rows(named=True)}
    assert row["A"]["crv"] == pytest.approx(30.0 - 10.0)
    assert row["A"]["civ_referral_excluded"] == pytest.approx(30.0)
    assert row["A"]["civ"] == pytest.approx(90.0 / 3)  # only C, indirectly
    assert row["A"]["cev"] == pytest.approx(0.0 + 20.0 + 30.0)
    # B's CLV enters A's CEV once (through CRV), never through anybody's CIV
    assert row["B"]["civ"] == pytest.approx(60.0)  # B's own influence on C (share 2/3)
    assert sum(r["civ"] for r in row.values()) == pytest.approx(90.0)


def test_self_influence_through_cycles_is_excluded():
    # A and B react to each other only: S_AA > 0 but A's own CLV never counts in A's CIV.
    social = _social([("A", "B", "like", "instagram"), ("B", "A", "like", "instagram")])
    clv = _clv({"A": 100.0, "B": 10.0})
    civ = customer_influence_value(
        social,
        clv,
        EMPTY_REFERRALS.select("referrer_customer_id", "referee_customer_id"),
        EngagementSettings(civ_max_order=10),
    )
    by_id = dict(zip(civ["customer_id"], civ["civ"], strict=True))
    assert by_id == pytest.approx({"A": 10.0, "B": 100.0})


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


# ---- CKV, CEV, quadrants -----------------------------------------------------------------


def test_customer_with_only_reviews():
    reviews = pl.DataFrame(
        {
            "customer_id": ["R", "R", None],
            "helpful_votes": [0, 3, 50],
            "verified_purchase": [True, False, True],
        }
    )
    settings = EngagementSettings(ckv_value_per_review=2.0)
    ckv = customer_knowledge_value(reviews, settings)
    expected = 2.0 * (1.0 + 0.5 * (1.0 + math.log(4.0)))
    assert ckv["ckv_reviews"].item() == pytest.approx(expected)
    out = engagement_values(_clv({}), reviews, EMPTY_SOCIAL, EMPTY_REFERRALS, settings)
    row = out.row(0, named=True)
    assert row["customer_id"] == "R"
    assert (row["clv"], row["crv"], row["civ"], row["ckv_ideas"]) == (0.0, 0.0, 0.0, 0.0)
    assert row["cev"] == pytest.approx(expected)
    assert row["review_count"] == 2


def test_cev_is_the_sum_and_quadrants():
    clv = _clv({"A": 100.0, "B": 80.0, "C": 10.0, "D": 5.0})
    referrals = _referrals(
        [
            {"referral_id": "r1", "referrer_customer_id": "A", "referee_customer_id": "C"},
            {"referral_id": "r2", "referrer_customer_id": "C", "referee_customer_id": "D"},
        ]
    )
    customers = pl.DataFrame({"customer_id": ["A", "B", "C", "D", "E"]})
    out = engagement_values(
        clv,
        EMPTY_REVIEWS,
        EMPTY_SOCIAL,
        referrals,
        EngagementSettings(crv_acquisition_saved_type1=20.0),
        customers=customers,
    )
    assert out.height == 5
    np.testing.assert_allclose(
        out["cev"].to_numpy(),
        (out["clv"] + out["crv"] + out["civ"] + out["ckv"]).to_numpy(),
    )
    quadrant = dict(zip(out["customer_id"], out["quadrant"], strict=True))
    # median CLV = 10 (A 100, B 80 above); CRV median 0 (A 20, C 15 above).
    assert quadrant == {
        "A": "Champions",
        "B": "Affluents",
        "C": "Advocates",
        "D": "Misers",
        "E": "Misers",
    }
    assert out["quadrant_play"].null_count() == 0


@pytest.mark.parametrize("order", [1, 2, 4])
def test_civ_matches_dense_definition(order):
    rng = np.random.default_rng(11)
    ids = [f"c{k}" for k in range(15)]
    actors = rng.integers(0, 15, 80)
    targets = rng.integers(0, 15, 80)
    social = _social(
        [(ids[a], ids[t], "like", "instagram") for a, t in zip(actors, targets, strict=True)]
    )
    clv_values = rng.gamma(2.0, 50.0, 15)
    clv = _clv(dict(zip(ids, clv_values, strict=True)))
    pairs = [(0, 1), (2, 3), (4, 0)]
    credited = pl.DataFrame(
        {
            "referrer_customer_id": [ids[a] for a, _ in pairs],
            "referee_customer_id": [ids[b] for _, b in pairs],
        }
    )
    beta = 0.4
    got = customer_influence_value(
        social, clv, credited, EngagementSettings(civ_beta=beta, civ_max_order=order)
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
    for a, b in pairs:
        share[a, b] = 0.0
    civ_expected = share @ clv_values
    cie_expected = S.sum(axis=1) / S.sum()
    by_id = {r["customer_id"]: r for r in got.iter_rows(named=True)}
    for k, cid in enumerate(ids):
        if cid in by_id:
            assert by_id[cid]["civ"] == pytest.approx(civ_expected[k], abs=1e-9)
            assert by_id[cid]["cie"] == pytest.approx(cie_expected[k], abs=1e-12)
        else:
            assert civ_expected[k] == 0.0


def test_referral_pairs_outside_the_social_graph_are_ignored_by_civ():
    # Node indices come from an Enum over the graph's customers: a credited referral whose
    # referrer or referee never appears in the graph excludes nothing and does not fail.
    social = _social([("B", "A", "like", "instagram"), ("C", "A", "comment", "instagram")])
    referrals = _referrals(
        [
            {"referral_id": "r1", "referrer_customer_id": "A", "referee_customer_id": "Z"},
            {"referral_id": "r2", "referrer_customer_id": "Y", "referee_customer_id": "B"},
        ]
    )
    clv = _clv({"A": 0.0, "B": 30.0, "C": 90.0, "Y": 0.0, "Z": 50.0})
    out = engagement_values(clv, EMPTY_REVIEWS, social, referrals, NO_DISCOUNT)
    row = {r["customer_id"]: r for r in out.iter_rows(named=True)}
    assert row["A"]["civ"] == pytest.approx(120.0)  # all of B's and C's value, nothing excluded
    assert row["A"]["civ_referral_excluded"] == 0.0
    assert row["Y"]["civ"] == 0.0 and row["Y"]["crv"] == pytest.approx(20.0)
