"""CRV: which referrals count, what one is worth, and the forward-looking referral-rate model."""

import json
from dataclasses import replace
from datetime import date, datetime

import numpy as np
import polars as pl
import pytest
from scipy import stats

from engagement_box.engagement.config import EngagementSettings
from engagement_box.engagement.metrics import credited_referrals, engagement_values
from engagement_box.engagement.quadrants import with_quadrants
from engagement_box.engagement.referral import (
    ReferralModel,
    ReferralRateFit,
    annuity,
    customer_referral_value,
    fit_referral_model,
    fit_referral_rate,
    grouped_referral_rows,
    outcome_counts,
    referral_exposure,
    referral_outcomes,
    referral_values,
    shared_dropout_expected,
    value_credibility,
    with_referee_since,
)
from engagement_box.value.purchase_models import expected_purchases_grouped
from tests.engagement_frames import (
    EMPTY_REVIEWS,
    EMPTY_SOCIAL,
    clv_frame,
    referral_frame,
)

T1 = datetime(2024, 2, 1)


def _values(credited: pl.DataFrame) -> dict[str, float]:
    return dict(zip(credited["referral_id"], credited["value"], strict=True))


# ---- which referrals are credited (item 6: the order of the rules) --------------------------


def test_rules_converted_resolved_not_self_first_conversion_then_incentive():
    referrals = referral_frame(
        [
            # B converted through r2 first (earlier conversion): r1 loses though sent earlier
            {"referral_id": "r1", "referrer_customer_id": "A", "referee_customer_id": "B",
             "converted_at": T1},
            {"referral_id": "r2", "referrer_customer_id": "D", "referee_customer_id": "B"},
            {"referral_id": "r3", "referrer_customer_id": "A", "referee_customer_id": "A"},
            {"referral_id": "r4", "referrer_customer_id": "A", "referee_customer_id": "E",
             "converted_at": None},
            {"referral_id": "r5", "referrer_customer_id": "A", "referee_customer_id": "F",
             "referrer_reward": 0.0, "referee_reward": None},
            {"referral_id": "r6", "referrer_customer_id": "A", "referee_customer_id": None},
        ]
    )  # fmt: skip
    credited = credited_referrals(referrals, clv_frame({"B": 40.0}), EngagementSettings())
    assert credited["referral_id"].to_list() == ["r2"]
    assert credited["value"].item() == pytest.approx(40.0 - 10.0)


def test_earliest_conversion_comes_before_the_incentive_filter():
    # G joined through an unrewarded referral (r1); H's later rewarded referral (r2) of the same
    # person brought no one: nobody is credited, and H is not paid CRV for an existing customer.
    referrals = referral_frame(
        [
            {"referral_id": "r1", "referrer_customer_id": "F", "referee_customer_id": "G",
             "referrer_reward": 0.0, "referee_reward": 0.0},
            {"referral_id": "r2", "referrer_customer_id": "H", "referee_customer_id": "G",
             "converted_at": T1},
        ]
    )  # fmt: skip
    assert credited_referrals(referrals, clv_frame({"G": 80.0}), EngagementSettings()).height == 0


def test_same_conversion_time_tie_goes_to_smallest_referral_id():
    referrals = referral_frame(
        [
            {"referral_id": "r9", "referrer_customer_id": "A", "referee_customer_id": "B"},
            {"referral_id": "r1", "referrer_customer_id": "C", "referee_customer_id": "B"},
        ]
    )
    credited = credited_referrals(referrals, clv_frame({"B": 40.0}), EngagementSettings())
    assert credited["referrer_customer_id"].to_list() == ["C"]
    # numbered ids: r9 before r10, as rule 2 orders them
    numbered = referrals.with_columns(pl.Series("referral_id", ["r10", "r9"]))
    credited = credited_referrals(numbered, clv_frame({"B": 40.0}), EngagementSettings())
    assert credited["referrer_customer_id"].to_list() == ["C"]


def test_the_earliest_conversion_wins_before_the_earliest_referral():
    """X was referred by A on 1 January (joined on the 10th) and by B on the 5th (joined on
    the 6th): B's referral brought X. With the two sort keys swapped, A was credited."""
    referrals = referral_frame(
        [{"referral_id": "f1", "referrer_customer_id": "A", "referee_customer_id": "X",
          "referred_at": datetime(2024, 1, 1), "converted_at": datetime(2024, 1, 10)},
         {"referral_id": "f2", "referrer_customer_id": "B", "referee_customer_id": "X",
          "referred_at": datetime(2024, 1, 5), "converted_at": datetime(2024, 1, 6)}]
    )  # fmt: skip
    outcomes = referral_outcomes(referrals, date(2024, 6, 30))
    assert dict(zip(outcomes["referral_id"], outcomes["outcome"], strict=True)) == {
        "f1": "referee_referred_before",
        "f2": "credited",
    }


def test_two_new_customers_referring_each_other_credit_one_referral():
    """X1 and X2 join on one day; X1 refers X2 at 10:00 (X2 joins at 11:00), then X2 refers X1
    at 12:00 (X1 "joins" at 12:30): both were credited, each with the other's CLV, and both
    came out CEV Champions. X1 had sent a referral before X2's reached them: a member, not
    acquired by it."""
    day = datetime(2025, 3, 10)
    referrals = referral_frame(
        [{"referral_id": "rc1", "referrer_customer_id": "X1", "referee_customer_id": "X2",
          "referred_at": day.replace(hour=10), "converted_at": day.replace(hour=11)},
         {"referral_id": "rc2", "referrer_customer_id": "X2", "referee_customer_id": "X1",
          "referred_at": day.replace(hour=12), "converted_at": day.replace(hour=12, minute=30)}]
    )  # fmt: skip
    outcomes = referral_outcomes(referrals, date(2025, 6, 30))
    assert dict(zip(outcomes["referral_id"], outcomes["outcome"], strict=True)) == {
        "rc1": "credited",
        "rc2": "referee_already_customer",
    }
    assert outcomes.columns == [*referrals.columns, "rewards", "outcome"]
    credited = credited_referrals(referrals, clv_frame({"X1": 150.0, "X2": 120.0}),
                                  EngagementSettings(), date(2025, 6, 30))  # fmt: skip
    assert credited["referrer_customer_id"].to_list() == ["X1"]
    # At the same time (an export with dates only): the smaller referral_id was sent first.
    same = referrals.with_columns(
        pl.lit(day).alias("referred_at"), pl.lit(day).alias("converted_at")
    )
    outcomes = referral_outcomes(same, date(2025, 6, 30))
    assert dict(zip(outcomes["referral_id"], outcomes["outcome"], strict=True)) == {
        "rc1": "credited",
        "rc2": "referee_already_customer",
    }
    # Plain numbered ids: 9 was sent before 10 (in text order, 10 came first).
    numbered = same.with_columns(pl.Series("referral_id", ["9", "10"]))
    outcomes = referral_outcomes(numbered, date(2025, 6, 30))
    assert dict(zip(outcomes["referral_id"], outcomes["outcome"], strict=True)) == {
        "9": "credited",
        "10": "referee_already_customer",
    }


def test_conversion_after_the_as_of_day_is_not_a_conversion_yet():
    referrals = referral_frame(
        [
            {"referral_id": "r1", "referrer_customer_id": "A", "referee_customer_id": "B",
             "converted_at": datetime(2024, 1, 31, 23, 59)},
            {"referral_id": "r2", "referrer_customer_id": "A", "referee_customer_id": "C",
             "converted_at": datetime(2024, 2, 1, 0, 0)},
        ]
    )  # fmt: skip
    credited = credited_referrals(
        referrals, clv_frame({}), EngagementSettings(), as_of=date(2024, 1, 31)
    )
    assert credited["referral_id"].to_list() == ["r1"]


def test_a_referral_sent_to_an_existing_customer_acquires_nobody():
    # B signed up a year before A's referral, D ordered as a guest before it: neither was
    # brought by it. C signed up on the referral's day (that is the conversion): credited.
    # E, whose profile another referral brought earlier, is the earlier rule's case.
    at = datetime(2024, 3, 1, 10, 0)
    referrals = referral_frame(
        [
            {"referral_id": f"r{k}", "referrer_customer_id": "A", "referee_customer_id": who,
             "referred_at": at, "converted_at": datetime(2024, 3, 1, 12, 0)}
            for k, who in enumerate("BCD", start=1)
        ]
    )  # fmt: skip
    since = pl.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D", "D"],
            "since": [date(2023, 1, 1), date(2023, 3, 1), date(2024, 3, 1), date(2024, 2, 1),
                      date(2024, 3, 1)],  # D: a first order, then a profile the referral made
        }
    )  # fmt: skip
    judged = referral_outcomes(with_referee_since(referrals, since), date(2024, 6, 30))
    assert dict(zip(judged["referral_id"], judged["outcome"], strict=True)) == {
        "r1": "referee_already_customer",
        "r2": "credited",
        "r3": "referee_already_customer",
    }
    assert outcome_counts(judged)["referee_already_customer"] == 2
    out = engagement_values(
        clv_frame({"A": 50.0, "B": 300.0, "C": 40.0, "D": 500.0}),
        EMPTY_REVIEWS,
        EMPTY_SOCIAL,
        referrals,
        EngagementSettings(),
        as_of=date(2024, 6, 30),
        customers=since.select("customer_id").unique(),
        customer_since=since,
    )
    row = {r["customer_id"]: r for r in out.iter_rows(named=True)}
    assert row["A"]["crv_referrals"] == 1  # C only: B's and D's CLV are not A's doing
    without_rule = credited_referrals(referrals, clv_frame({"C": 40.0}), EngagementSettings())
    assert row["A"]["crv_realized"] == pytest.approx(
        without_rule.filter(pl.col("referee_customer_id") == "C")["value"].item()
    )


# ---- the value of one referral (items 2 and 3) ----------------------------------------------


def test_type_two_reward_is_a_cost_and_referee_clv_is_not_discounted():
    settings = EngagementSettings(
        crv_acquisition_saved_type1=10.0,
        crv_acquisition_saved_type2=0.0,
        crv_retention_cost=2.0,
        crv_unknown_type2_share=0.25,
    )
    referrals = referral_frame(
        [
            {"referral_id": "r1", "referrer_customer_id": "A", "referee_customer_id": "B",
             "would_have_joined_anyway": True, "referrer_reward": 20.0, "referee_reward": 20.0},
            {"referral_id": "r2", "referrer_customer_id": "A", "referee_customer_id": "C",
             "would_have_joined_anyway": None, "converted_at": datetime(2020, 1, 1),
             "referred_at": datetime(2020, 1, 1)},
            {"referral_id": "r3", "referrer_customer_id": "A", "referee_customer_id": "D"},
        ]
    )  # fmt: skip
    credited = credited_referrals(
        referrals, clv_frame({"B": 100.0, "C": 100.0, "D": 100.0}), settings, as_of=date(2026, 1, 1)
    )
    values = _values(credited)
    # $40 of rewards for someone who would have joined anyway, ACQ2 = 0: a cost of 40.
    assert values["r1"] == pytest.approx(-40.0)
    # A six-year-old referral is worth the referee's CLV (already a present value), undiscounted.
    assert values["r2"] == pytest.approx(0.75 * (100 - 2 + 10) + 0.25 * 0.0 - 10.0)
    assert values["r3"] == pytest.approx(100 - 2 + 10 - 10.0)


def test_unknown_share_is_estimated_from_credited_referrals_with_an_answer():
    referrals = referral_frame(
        [
            {"referral_id": "r1", "referrer_customer_id": "A", "referee_customer_id": "B",
             "would_have_joined_anyway": True},
            {"referral_id": "r2", "referrer_customer_id": "A", "referee_customer_id": "C",
             "would_have_joined_anyway": False},
            {"referral_id": "r3", "referrer_customer_id": "A", "referee_customer_id": "D",
             "would_have_joined_anyway": None},
            # Not credited (no reward): its answer does not enter the share.
            {"referral_id": "r4", "referrer_customer_id": "A", "referee_customer_id": "E",
             "would_have_joined_anyway": True, "referrer_reward": 0.0, "referee_reward": 0.0},
            {"referral_id": "r5", "referrer_customer_id": "A", "referee_customer_id": "F",
             "would_have_joined_anyway": True, "converted_at": None},
        ]
    )  # fmt: skip
    credited = credited_referrals(referrals, clv_frame({}), EngagementSettings())
    assert credited.filter(pl.col("referral_id") == "r3")["p_type2"].item() == 0.5
    none_answered = referral_frame(
        [{"referral_id": "r1", "referrer_customer_id": "A", "referee_customer_id": "B",
          "would_have_joined_anyway": None}]
    )  # fmt: skip
    assert credited_referrals(none_answered, clv_frame({}), EngagementSettings())[
        "p_type2"
    ].item() == pytest.approx(0.5)


# ---- the referral-rate model ----------------------------------------------------------------


def test_nbd_fit_recovers_the_population_rate_distribution():
    rng = np.random.default_rng(3)
    n = 20_000
    r_true, alpha_true = 0.4, 8.0  # mean 0.05 referrals a month, strongly over-dispersed
    exposure = rng.uniform(1.0, 36.0, n)
    counts = rng.poisson(rng.gamma(r_true, 1.0 / alpha_true, n) * exposure)
    fit = fit_referral_rate(counts, exposure)
    assert fit.r == pytest.approx(r_true, rel=0.15)
    assert fit.alpha == pytest.approx(alpha_true, rel=0.2)
    assert fit.referrals == counts.sum()
    # The posterior rate shrinks a customer's own rate toward r / alpha, more with less exposure.
    rate = fit.rate(np.array([3.0, 3.0]), np.array([2.0, 30.0]))
    assert fit.r / fit.alpha < rate[1] < rate[0] < 3.0 / 2.0


def test_nbd_fit_without_spread_between_customers_is_the_poisson_limit():
    rng = np.random.default_rng(4)
    exposure = rng.uniform(1.0, 24.0, 5_000)
    counts = rng.poisson(0.05 * exposure)  # one rate for everyone
    fit = fit_referral_rate(counts, exposure)
    assert fit.poisson_limit
    pooled = counts.sum() / exposure.sum()  # the fit counts exposure in whole days
    assert fit.rate(np.array([0.0, 4.0]), np.array([1.0, 2.0])) == pytest.approx(
        [pooled] * 2, rel=1e-4
    )


def test_an_nbd_fit_that_stops_short_of_the_poisson_limit_reports_the_limit():
    # One rate for everyone, where L-BFGS-B stopped at r = 4,129 (under POISSON_LIMIT_SHAPE)
    # with a likelihood below the limit's: a review met the same on 273 customers (r = 2,935).
    rng = np.random.default_rng(25)
    m = int(rng.integers(50, 3000))
    exposure = rng.uniform(0.5, 24.0, m)
    counts = rng.poisson(rng.uniform(0.001, 0.05) * exposure)
    fit = fit_referral_rate(counts, exposure)
    assert fit.poisson_limit, (fit.r, fit.alpha)
    months = np.rint(exposure * 30.0) / 30.0  # whole days, as the fit counts them
    pooled = counts.sum() / months.sum()
    poisson = stats.poisson.logpmf(counts, pooled * months).sum()
    assert fit.log_likelihood == pytest.approx(poisson, rel=1e-12)
    assert fit.rate(np.array([0.0, 9.0]), np.array([1.0, 2.0])) == pytest.approx([pooled] * 2)


def test_nbd_fit_with_no_referrals_gives_rate_zero():
    fit = fit_referral_rate(np.zeros(5), np.full(5, 12.0))
    assert fit.referrals == 0
    assert fit.rate(np.zeros(2), np.array([1.0, 5.0])).tolist() == [0.0, 0.0]


def test_annuity_is_monthly_like_clv():
    settings = EngagementSettings(horizon_months=12, monthly_discount_rate=0.01)
    assert annuity(settings) == pytest.approx(sum(1.01**-k for k in range(1, 13)))
    assert annuity(EngagementSettings(horizon_months=0)) == 0.0


def test_credibility_shrinks_toward_the_population_mean():
    # Referrers differ far more than their own referrals do: kappa is small, own means count.
    per = pl.DataFrame(
        {"n_valued": [4, 4, 4], "mean": [10.0, 50.0, 90.0], "ss": [12.0, 12.0, 12.0]}
    )
    within = 36.0 / 9
    between = (4 * (40**2 + 0 + 40**2) - 2 * within) / (12 - 48 / 12)
    assert value_credibility(per) == pytest.approx(within / between)
    # No spread between referrers beyond chance: everyone gets the population mean.
    same = pl.DataFrame({"n_valued": [2, 2], "mean": [10.0, 10.0], "ss": [50.0, 50.0]})
    assert value_credibility(same) == float("inf")
    # Nobody has two referrals: the two variances cannot be told apart; kappa = 1.
    single = pl.DataFrame({"n_valued": [1, 1], "mean": [10.0, 90.0], "ss": [0.0, 0.0]})
    assert value_credibility(single) == 1.0


def test_forward_crv_is_rate_times_shrunk_value_times_annuity():
    settings = EngagementSettings(crv_value_credibility=1.0, horizon_months=6)
    credited = pl.DataFrame(
        {
            "referrer_customer_id": ["A", "A", "B"],
            "referred_at": [datetime(2024, 3, 1)] * 3,
            "value": [100.0, 60.0, 20.0],
            "recent": [True] * 3,
        }
    )
    start = pl.DataFrame({"customer_id": ["A", "B", "C"], "start": [datetime(2024, 1, 1)] * 3})
    out, model = customer_referral_value(credited, start, settings, date(2024, 12, 30))
    fit = model.fit
    assert model.kappa == 1.0 and model.mean_value == pytest.approx(60.0)
    t = 365 / 30  # 2024-01-01 to the end of 2024-12-30: 365 days of 30-day months
    row = {r["customer_id"]: r for r in out.iter_rows(named=True)}
    expected_value = {"A": (2 * 80 + 60) / 3, "B": (20 + 60) / 2, "C": 60.0}
    for cid, n in (("A", 2), ("B", 1), ("C", 0)):
        rate = fit.rate(np.array([float(n)]), np.array([t]))[0]
        assert row[cid]["crv_value_per_referral"] == pytest.approx(expected_value[cid])
        assert row[cid]["crv_expected_referrals"] == pytest.approx(6 * rate)
        assert row[cid]["crv"] == pytest.approx(rate * expected_value[cid] * annuity(settings))
    assert row["A"]["crv_realized"] == pytest.approx(160.0)
    assert row["C"]["crv_realized"] == 0.0


def test_a_future_referral_is_valued_by_the_referees_of_the_horizon():
    """A referee's CLV at the as-of is what is left of them: a referee of years ago is worth
    little now, while a referee acquired in the coming year brings a new customer's value. The
    value of a future referral took every credited referee's CLV alike (a review: referees of
    the last year worth 253 on average, all of them 98), so CRV fell as a programme aged. It
    comes from the referrals converted within the CLV horizon before the as-of; all of them
    when none is."""
    settings = EngagementSettings(
        crv_value_credibility=1.0,
        crv_retention_cost=0.0,
        crv_acquisition_saved_type1=0.0,
        horizon_months=12,
    )
    rows = [
        {"referral_id": "old", "referrer_customer_id": "A", "referee_customer_id": "B",
         "referred_at": datetime(2022, 3, 1), "converted_at": datetime(2022, 3, 1)},
        {"referral_id": "new", "referrer_customer_id": "A", "referee_customer_id": "C",
         "referred_at": datetime(2024, 6, 1), "converted_at": datetime(2024, 6, 1)},
        {"referral_id": "d", "referrer_customer_id": "D", "referee_customer_id": "E",
         "referred_at": datetime(2024, 1, 6), "converted_at": datetime(2024, 1, 7, 0, 0, 1)},
        # 360 days (12 months of 30) before the end of the as-of day, exactly: not within
        {"referral_id": "edge", "referrer_customer_id": "F", "referee_customer_id": "G",
         "referred_at": datetime(2024, 1, 6), "converted_at": datetime(2024, 1, 7)},
    ]  # fmt: skip
    referrals = referral_frame(rows).with_columns(  # a value: the referee's CLV - 2
        pl.lit(1.0).alias("referrer_reward"), pl.lit(1.0).alias("referee_reward")
    )
    as_of = date(2024, 12, 31)
    clv = clv_frame({"B": 10.0, "C": 300.0, "E": 200.0, "G": 40.0})
    credited = credited_referrals(referrals, clv, settings, as_of=as_of)
    recent = dict(zip(credited["referral_id"], credited["recent"], strict=True))
    assert recent == {"old": False, "new": True, "d": True, "edge": False}
    start = pl.DataFrame({"customer_id": list("ABCDEFGH"), "start": [datetime(2020, 1, 1)] * 8})
    out, model = customer_referral_value(credited, start, settings, as_of)
    assert model.mean_value == pytest.approx(248.0)  # C and E, not (8 + 298 + 198 + 38) / 4
    row = {r["customer_id"]: r for r in out.iter_rows(named=True)}
    assert row["A"]["crv_value_per_referral"] == pytest.approx((298 + 248) / 2)  # kappa 1
    assert row["F"]["crv_value_per_referral"] == pytest.approx(248.0)  # none of its own valued
    assert row["H"]["crv_value_per_referral"] == pytest.approx(248.0)
    # past referrals are still all counted: in the rate, and in what they are worth today
    assert row["A"]["crv_referrals"] == 2 and row["A"]["crv_realized"] == pytest.approx(306.0)
    said = model.report()["value_per_referral_from"]
    assert said.startswith("2 referrals converted within the CLV horizon"), said
    # None within the horizon: every credited referral values a future one.
    old = credited.filter(pl.col("referral_id").is_in(["old", "edge"]))
    _, model = customer_referral_value(old, start, settings, as_of)
    assert model.mean_value == pytest.approx(23.0)
    assert model.report()["value_per_referral_from"].startswith("all 2 credited referrals")


def simulated_referrals(rng, rates: np.ndarray, stop: np.ndarray):
    """Customers exposed 60-900 days who refer at `rates` per day and stop after each referral
    with chance `stop`: (exposure days, referrals, day of the last one)."""
    size = rates.size
    exposure = rng.integers(60, 900, size).astype(np.float64)
    n, last = np.zeros(size), np.zeros(size)
    for i in range(size):
        t = 0.0
        while True:
            t += rng.exponential(1 / rates[i])
            if t > exposure[i]:
                break
            n[i] += 1
            last[i] = t
            if rng.random() < stop[i]:
                break
    return exposure, n, last


def test_customers_who_stopped_referring_are_expected_to_refer_less():
    """The NBD gave every customer a constant rate: a customer whose three referrals were two
    years ago was expected to refer as often as one who referred three times last month, and
    on the generated retailer it expected twice the referrals that came (docs/METRICS.md,
    "CRV" step 3). BG/NBD, fitted where the data can tell when customers stop, expects fewer of
    the first; CRV discounts each month's expected referrals."""
    rng = np.random.default_rng(20261205)
    size = 4000
    # referrals drawn from a BG/NBD process: rates Gamma(r, alpha) per day, a stop after each
    # referral with probability p ~ Beta(a, b)
    exposure, n, last = simulated_referrals(
        rng, rng.gamma(0.3, 1 / 40.0, size), rng.beta(1.0, 2.0, size)
    )
    recency = np.rint(last)
    fit = fit_referral_model(*grouped_referral_rows(n, recency, exposure))
    assert fit.dropout is not None, fit.nbd_reason
    report = ReferralModel(fit, float("inf"), True, 50.0).report()
    assert report["expected_referrals_from"].startswith("BG/NBD: ")
    # two customers with 3 referrals in 720 days, the last on day 30 or on day 715
    frame = pl.DataFrame(
        {
            "customer_id": ["gone", "active"],
            "n": [3, 3],
            "n_valued": [0, 0],
            "mean": [None, None],
            "crv_realized": [0.0, 0.0],
            "exposure": [24.0, 24.0],
            "exposure_days": [720, 720],
            "recency_days": [30, 715],
        },
        schema_overrides={"mean": pl.Float64},
    )
    settings = EngagementSettings(horizon_months=12, monthly_discount_rate=0.01)
    out = referral_values(frame, fit, float("inf"), 50.0, settings)
    expected = dict(zip(out["customer_id"], out["crv_expected_referrals"], strict=True))
    assert expected["gone"] < 0.5 * expected["active"], expected
    # CRV = v * sum_k (E[Y(k)] - E[Y(k-1)]) / (1 + d)^k, from lifetimes-equal expectations
    months = np.arange(1, 13) * 30.0
    cumulative = expected_purchases_grouped(
        "bgnbd", fit.dropout, list(months), [3, 3], [30, 715], [720, 720]
    )
    monthly = np.diff(cumulative, axis=0, prepend=0.0)
    crv = 50.0 * (monthly * 1.01 ** -np.arange(1, 13)[:, None]).sum(axis=0)
    np.testing.assert_allclose(out["crv"].to_numpy(), crv, rtol=1e-12)
    np.testing.assert_allclose(out["crv_expected_referrals"].to_numpy(), cumulative[-1])
    # The NBD, for comparison: the same for both
    nbd = replace(fit, dropout=None)
    flat = referral_values(frame, nbd, float("inf"), 50.0, settings)["crv_expected_referrals"]
    assert flat[0] == pytest.approx(flat[1])


def test_no_future_referrals_is_a_crv_of_zero_not_minus_zero():
    """Referrals that lose money (mu < 0) and a rate fit of nobody referring: every CRV is 0,
    not -0.0 (which an analyst's CSV and BI tool print as "-0")."""
    frame = pl.DataFrame(
        {
            "customer_id": ["a", "b"],
            "n": [0, 0],
            "n_valued": [0, 0],
            "mean": [None, None],
            "crv_realized": [0.0, 0.0],
            "exposure": [24.0, 24.0],
            "exposure_days": [720, 720],
            "recency_days": [0, 0],
        },
        schema_overrides={"mean": pl.Float64},
    )
    nobody = ReferralRateFit(
        r=0.0, alpha=0.0, customers=2, referrals=0, exposure_months=48.0, log_likelihood=0.0
    )
    settings = EngagementSettings(horizon_months=12, monthly_discount_rate=0.01)
    crv = referral_values(frame, nobody, float("inf"), -20.0, settings)["crv"].to_numpy()
    assert crv.tolist() == [0.0, 0.0]
    assert not np.signbit(crv).any()


def test_the_referral_model_is_reported_as_it_was_used():
    """What an engineer reads in the step's metadata: the kappa the run used (set or estimated,
    inf in words, since JSON has no inf), the rate and the mean value of one referral."""
    credited = pl.DataFrame(
        {
            "referrer_customer_id": ["A", "A", "B", "B"],
            "referred_at": [datetime(2024, 3, 1)] * 4,
            "value": [50.0, 50.0, 50.0, 50.0],
            "recent": [True] * 4,
        }
    )
    start = pl.DataFrame({"customer_id": ["A", "B", "C"], "start": [datetime(2024, 1, 1)] * 3})
    _, estimated = customer_referral_value(
        credited, start, EngagementSettings(), date(2024, 12, 30)
    )
    report = estimated.report()
    assert report["kappa"] == "estimated (Buhlmann-Straub)"
    assert str(report["value_credibility_kappa"]).startswith("inf: ")
    assert report["credited_referrals"] == 4 and report["mean_value_per_referral"] == 50.0
    json.dumps(report, allow_nan=False)  # the metadata panel's JSON has no inf or NaN
    _, set_ = customer_referral_value(
        credited, start, EngagementSettings(crv_value_credibility=2.5), date(2024, 12, 30)
    )
    assert set_.report()["kappa"] == "set" and set_.report()["value_credibility_kappa"] == 2.5
    nobody = credited.clear()
    _, none = customer_referral_value(nobody, start, EngagementSettings(), date(2024, 12, 30))
    assert none.report()["referral_rate_per_month"].startswith("0: nobody")


def test_exposure_starts_at_customer_since_or_the_first_referral():
    # B's since is after their first referral: exposure starts at the referral instead.
    referrals = referral_frame(
        [{"referral_id": "r1", "referrer_customer_id": "B", "referee_customer_id": "C",
          "referred_at": datetime(2024, 1, 1), "converted_at": datetime(2024, 1, 2)}]
    )  # fmt: skip
    since = pl.DataFrame(
        {"customer_id": ["B", "C", "X"], "since": [date(2024, 6, 1), date(2024, 1, 2), None]}
    )
    settings = EngagementSettings(crv_value_credibility=1.0)
    kwargs = {"as_of": date(2024, 12, 31), "customer_since": since}
    out = engagement_values(
        clv_frame({"C": 50.0}), EMPTY_REVIEWS, EMPTY_SOCIAL, referrals, settings, **kwargs
    )
    plain = engagement_values(
        clv_frame({"C": 50.0}),
        EMPTY_REVIEWS,
        EMPTY_SOCIAL,
        referrals,
        settings,
        as_of=date(2024, 12, 31),
    )
    # B's exposure is the same in both runs (from 2024-01-01), so B's rate is the same.
    b = out.filter(pl.col("customer_id") == "B")
    assert b["crv_expected_referrals"].item() == pytest.approx(
        plain.filter(pl.col("customer_id") == "B")["crv_expected_referrals"].item()
    )
    assert set(out["customer_id"]) == {"B", "C"}  # X is not a customer of this run


def test_a_conversion_after_the_as_of_does_not_start_an_exposure():
    """Without start dates, a referee's exposure starts at the programme's first referral or
    their own conversion if later: a conversion after the as-of had not happened then (C's
    exposure was 0, C left the rate fit, and everyone's expected referrals rose by half)."""
    referrals = referral_frame(
        [{"referral_id": "r1", "referrer_customer_id": "A", "referee_customer_id": "B",
          "referred_at": datetime(2025, 1, 1), "converted_at": datetime(2025, 1, 2)},
         {"referral_id": "r2", "referrer_customer_id": "A", "referee_customer_id": "C",
          "referred_at": datetime(2025, 6, 1), "converted_at": datetime(2026, 2, 1)}]
    )  # fmt: skip
    settings = EngagementSettings(crv_value_credibility=1.0)
    out = engagement_values(
        clv_frame({"A": 100.0, "B": 50.0, "C": 80.0}),
        EMPTY_REVIEWS,
        EMPTY_SOCIAL,
        referrals,
        settings,
        as_of=date(2025, 12, 31),
    )
    # Exposure from 2025-01-01 for A and C, from B's conversion for B: 365 + 364 + 365 days,
    # one credited referral; the pooled rate per 30-day month, over a 12-month horizon.
    expected = 12 * 1 / (1094 / 30)
    rows = {r["customer_id"]: r for r in out.iter_rows(named=True)}
    assert rows["C"]["crv_expected_referrals"] == pytest.approx(expected, rel=1e-6)


def test_money_losing_referrer_has_negative_crv_and_its_own_segment():
    referrals = referral_frame(
        [
            # L pays 50 of rewards for each referee who would have joined anyway.
            *[{"referral_id": f"l{k}", "referrer_customer_id": "L", "referee_customer_id": f"x{k}",
               "referrer_reward": 25.0, "referee_reward": 25.0, "would_have_joined_anyway": True}
              for k in range(4)],
            *[{"referral_id": f"g{k}", "referrer_customer_id": "G", "referee_customer_id": f"y{k}"}
              for k in range(4)],
        ]
    )  # fmt: skip
    clv = clv_frame({"L": 500.0, "G": 10.0, **{f"y{k}": 200.0 for k in range(4)}})
    out = engagement_values(
        clv, EMPTY_REVIEWS, EMPTY_SOCIAL, referrals, EngagementSettings(), as_of=date(2024, 6, 30)
    )
    row = {r["customer_id"]: r for r in out.iter_rows(named=True)}
    assert row["L"]["crv"] < 0 and row["L"]["crv_realized"] == pytest.approx(-200.0)
    assert row["L"]["crv_losing"] and row["L"]["quadrant"] == "CEV Costly Referrers"
    assert not row["G"]["crv_losing"] and row["G"]["crv"] > 0
    assert row["G"]["quadrant"] in ("CEV Advocates", "CEV Champions")


def test_the_quadrant_goes_by_expected_crv_and_high_crv_needs_a_gain():
    """ "CEV Costly Referrers" are referrers whose expected referral value (crv) is negative,
    whatever their referrals realised so far (A: one referral at -5, expected +48.8); and a
    high CRV is above 0 as well as above the cut (C: -1 is above a cut of -3, and costs)."""
    frame = pl.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D"],
            "buyer": [True, True, True, True],
            "clv": [10.0, 20.0, 30.0, 40.0],
            "crv": [48.8, -4.65, -1.0, 60.0],
            "crv_realized": [-5.0, 3.0, 0.0, 90.0],
            "crv_referrals": [1, 1, 1, 3],
        }
    )
    out = with_quadrants(frame, clv_cut=25.0, crv_cut=-3.0)
    rows = {r["customer_id"]: r for r in out.iter_rows(named=True)}
    assert [rows[c]["crv_losing"] for c in "ABCD"] == [False, True, True, False]
    assert [rows[c]["crv_high"] for c in "ABCD"] == [True, False, False, True]
    assert [rows[c]["quadrant"] for c in "ABCD"] == [
        "CEV Advocates", "CEV Costly Referrers", "CEV Costly Referrers", "CEV Champions"
    ]  # fmt: skip


def test_a_crv_within_half_a_cent_of_zero_is_neither_costly_nor_high():
    """Referrers the model expects to refer almost never again have a CRV of 1e-8 either way:
    every referrer of a retailer was a Costly Referrer by rounding, and one at +2e-8 could be
    an Advocate (a review). Half a cent either side of 0 is no referral value."""
    frame = pl.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D"],
            "buyer": [True, True, True, True],
            "clv": [10.0, 20.0, 30.0, 40.0],
            "crv": [-2.5e-8, 2e-8, -0.004, -0.006],
            "crv_realized": [27.55, 3.0, 0.0, -1.0],
            "crv_referrals": [1, 1, 1, 1],
        }
    )
    out = with_quadrants(frame, clv_cut=25.0, crv_cut=1e-8)
    rows = {r["customer_id"]: r for r in out.iter_rows(named=True)}
    assert [rows[c]["crv_losing"] for c in "ABCD"] == [False, False, False, True]
    assert [rows[c]["crv_high"] for c in "ABCD"] == [False, False, False, False]
    assert [rows[c]["quadrant"] for c in "ABCD"] == [
        "CEV Misers", "CEV Misers", "CEV Affluents", "CEV Costly Referrers"
    ]  # fmt: skip


def test_a_credited_referral_proves_a_day_of_exposure():
    """Z first ordered at 20:00 on the as-of day and referred someone at 21:00: a credited
    referral is proof of exposure, at least one day (rounded to whole days, Z had none, and
    the rate fit took Z's referral over no time)."""
    as_of = date(2024, 6, 30)
    starts = pl.DataFrame(
        {"customer_id": ["Z", "A"], "start": [datetime(2024, 6, 30, 20), datetime(2024, 1, 1)]}
    )
    per_referrer = pl.DataFrame(
        {
            "customer_id": ["Z", "A"],
            "n": [1, 1],
            "n_valued": [1, 1],
            "mean": [30.0, 30.0],
            "ss": [0.0, 0.0],
            "crv_realized": [30.0, 30.0],
            "first_referral": [datetime(2024, 6, 30, 21), datetime(2024, 2, 1)],
            "last_referral": [datetime(2024, 6, 30, 21), datetime(2024, 2, 1)],
        }
    )
    out = referral_exposure(starts, per_referrer, as_of)
    days = dict(zip(out["customer_id"], out["exposure_days"], strict=True))
    assert days == {"Z": 1, "A": 182}


def test_customer_since_without_its_columns_is_a_clear_error():
    with pytest.raises(ValueError, match="customer_since needs the columns customer_id and since"):
        engagement_values(
            clv_frame({"A": 1.0}),
            EMPTY_REVIEWS,
            EMPTY_SOCIAL,
            referral_frame([]),
            as_of=date(2024, 1, 31),
            customer_since=pl.DataFrame({"customer_id": ["A"], "signup_date": [date(2024, 1, 1)]}),
        )


def test_customers_equally_likely_to_stop_get_the_limit_model_not_a_flip_to_the_nbd():
    """Where customers hardly differ in their chance to stop after a referral, BG/NBD's a and b
    run to infinity together and the fit stops anywhere on a flat ridge: erasing one customer
    who never referred flipped the bundled sample's model to the NBD and its CRV by +47 % (a
    review). Such data gets BG/NBD's limit, one chance p to stop for everyone; too few repeat
    referrers, the NBD, by a rule of the data."""
    rng = np.random.default_rng(7)
    size = 3000
    # every customer stops after a referral with the same chance, 0.3
    exposure, n, last = simulated_referrals(rng, rng.gamma(0.5, 1 / 60.0, size), np.full(size, 0.3))
    rows = grouped_referral_rows(n, np.rint(last), exposure)
    fit = fit_referral_model(*rows)  # BG/NBD near its limit, or the limit: the same chance
    d = fit.dropout
    chance = d["p"] if "p" in d else d["a"] / (d["a"] + d["b"])
    assert chance == pytest.approx(0.3, abs=0.05), fit
    # A fit on the flat ridge (the sample's a = 1.5e6, or no finite standard error): the limit
    from engagement_box.value import fitting

    ridge = fitting.fit_bgnbd(rows[0], rows[1], rows[2].astype(float), counts=rows[3])
    errors = {"r": 0.1, "alpha": 1.0, "a": 1e8, "b": 1e8}  # finite, and huge
    ridge = replace(ridge, params={**ridge.params, "a": 3e6, "b": 7e6}, standard_errors=errors)
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(fitting, "fit_bgnbd", lambda *a, **k: ridge)
        fit = fit_referral_model(*rows)
    assert set(fit.dropout) == {"r", "alpha", "p"}, fit
    assert fit.dropout["p"] == pytest.approx(0.3, abs=0.05)
    assert fit.nbd_reason == "BG/NBD's a + b ran to 1e+07"
    said = ReferralModel(fit, float("inf"), True, 1.0).report()["expected_referrals_from"]
    assert said.startswith("BG/NBD in its limit of one chance to stop"), said
    # the limit's expectation is BG/NBD's at a, b -> inf with a / (a + b) = p
    p = fit.dropout["p"]
    x, t_x, T = np.array([0.0, 1, 4]), np.array([0.0, 20, 400]), np.array([300.0, 300, 450])
    near = {"r": fit.dropout["r"], "alpha": fit.dropout["alpha"], "a": p * 1e7, "b": (1 - p) * 1e7}
    np.testing.assert_allclose(
        shared_dropout_expected(fit.dropout, 360.0, x, t_x, T),
        expected_purchases_grouped("bgnbd", near, [360.0], x, t_x, T)[0],
        rtol=1e-5,
    )
    # the worked example's six customers, one of them with two referrals: the NBD, said why
    few = fit_referral_model(*grouped_referral_rows([2, 1, 0, 0], [90, 31, 0, 0], [365] * 4))
    assert few.dropout is None and few.nbd_reason.startswith("2 customer(s) with a credited")
    # Everyone stops after their first referral: nobody referred twice, and the NBD expected
    # five times the referrals that came (a re-review); the limit with p at 1 expects them
    exposure, n, last = simulated_referrals(
        rng, rng.gamma(0.5, 1 / 60.0, size), np.full(size, 0.9999)
    )
    rows = grouped_referral_rows(n, np.rint(last), exposure)
    stopping = fit_referral_model(*rows)
    assert stopping.dropout["p"] > 0.999, stopping
    expected, _ = stopping.expected(*rows[:3], 12, 0.01)
    nbd, _ = replace(stopping, dropout=None).expected(*rows[:3], 12, 0.01)
    assert float(expected @ rows[3]) < 0.3 * float(nbd @ rows[3])
