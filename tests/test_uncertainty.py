"""Per-customer intervals: they cover the truth at about their nominal rate (simulation)."""

import numpy as np
import pytest

from engagement_box.value import fitting, purchase_models, scoring, simulation, uncertainty

TRUE_BGNBD = {"r": 0.8, "alpha": 10.0, "a": 0.8, "b": 3.0}


def test_intervals_cover_the_true_expectation_at_about_the_nominal_rate():
    """Data drawn from known BG/NBD parameters, 30 times: the 10th-90th percentile interval of
    each customer's expected purchases must contain the expectation under the true parameters
    about 80 % of the time. All customers of one draw share the fitted parameters, so the
    coverage is averaged over the draws (24 draws: a standard error of about 0.05)."""
    coverage = []
    for seed in range(24):
        sim = simulation.simulate_bgnbd(TRUE_BGNBD, 1000, T_max=52.0, seed=seed)
        fit = fitting.fit_bgnbd(sim.x, sim.t_x, sim.T, time_unit="W")
        iv = uncertainty.intervals("bgnbd", fit, sim.x, sim.t_x, sim.T, horizon=26.0)
        truth = scoring.expected_purchases(TRUE_BGNBD, 26.0, sim.x, sim.t_x, sim.T)
        low, high = iv["expected_purchases_p10"].to_numpy(), iv["expected_purchases_p90"].to_numpy()
        coverage.append(float(np.mean((low <= truth) & (truth <= high))))
    assert 0.68 <= np.mean(coverage) <= 0.92, coverage


def test_covariance_gives_the_fit_standard_errors():
    sim = simulation.simulate_bgnbd(TRUE_BGNBD, 3000, T_max=52.0, seed=7)
    fit = fitting.fit_bgnbd(sim.x, sim.t_x, sim.T, time_unit="W")
    cov = uncertainty.log_param_covariance("bgnbd", fit, sim.x, sim.t_x, sim.T)
    se = np.sqrt(np.diag(cov)) * np.array([fit.params[k] for k in fitting.BGNBD_PARAMS])
    for k, v in zip(fitting.BGNBD_PARAMS, se, strict=True):
        assert v == pytest.approx(fit.standard_errors[k], rel=1e-4), k
    # The true parameters lie within a few standard errors of the estimates.
    for k, v in zip(fitting.BGNBD_PARAMS, se, strict=True):
        assert abs(fit.params[k] - TRUE_BGNBD[k]) < 4 * v, k


@pytest.mark.parametrize("name", purchase_models.MODEL_NAMES)
def test_intervals_bracket_the_scores(name):
    sim = simulation.simulate_bgnbd(TRUE_BGNBD, 1000, T_max=52.0, seed=3, whole_units=True)
    m = np.where(sim.x > 0, 20.0 + 10.0 * np.random.default_rng(3).random(1000), 0.0)
    fit = purchase_models.fit_model(name, sim.x, sim.t_x, sim.T, time_unit="W")
    gg = fitting.fit_gamma_gamma(sim.x, m)
    iv = uncertainty.intervals(
        name, fit, sim.x, sim.t_x, sim.T, m, horizon=26.0, gamma_gamma=gg, time_unit="W"
    )
    scores = purchase_models.score_with(
        name, fit, sim.x, sim.t_x, sim.T, m, gamma_gamma=gg, horizons=[26.0], time_unit="W"
    )
    np.testing.assert_allclose(iv["expected_purchases"], scores["expected_purchases"][0])
    np.testing.assert_allclose(iv["clv"], scores["clv"], rtol=1e-9)
    for col in ("expected_purchases", "clv"):
        assert (iv[f"{col}_p10"] < iv[col]).all() and (iv[col] < iv[f"{col}_p90"]).all()


def test_the_clv_range_is_of_the_margin_as_the_clv_is():
    """ENGAGEMENT_MARGIN scales a CLV and its 10th/90th percentiles alike: a range that
    ignored it (a mutation review: every test ran at margin 1, where its log is 0) would put
    the 10th percentile above the CLV at a margin of 0.3."""
    sim = simulation.simulate_bgnbd(TRUE_BGNBD, 1000, T_max=52.0, seed=3, whole_units=True)
    m = np.where(sim.x > 0, 20.0 + 10.0 * np.random.default_rng(3).random(1000), 0.0)
    fit = fitting.fit_bgnbd(sim.x, sim.t_x, sim.T, time_unit="W")
    gg = fitting.fit_gamma_gamma(sim.x, m)

    def ranges(margin: float):
        return uncertainty.intervals(
            "bgnbd", fit, sim.x, sim.t_x, sim.T, m, horizon=26.0, gamma_gamma=gg,
            time_unit="W", margin=margin,
        )  # fmt: skip

    whole, part = ranges(1.0), ranges(0.3)
    for col in ("clv", "clv_p10", "clv_p90"):
        np.testing.assert_allclose(part[col], 0.3 * whole[col], rtol=1e-9)
    assert (part["clv_p10"] < part["clv"]).all() and (part["clv"] < part["clv_p90"]).all()
    np.testing.assert_allclose(part["expected_purchases_p10"], whole["expected_purchases_p10"])


def test_intervals_narrow_with_more_customers():
    widths = []
    for n in (1000, 16000):
        sim = simulation.simulate_bgnbd(TRUE_BGNBD, n, T_max=52.0, seed=5, whole_units=True)
        fit = fitting.fit_bgnbd(sim.x, sim.t_x, sim.T, time_unit="W")
        iv = uncertainty.intervals("bgnbd", fit, sim.x, sim.t_x, sim.T, horizon=26.0)
        spread = iv["expected_purchases_p90"] - iv["expected_purchases_p10"]
        widths.append(float((spread / iv["expected_purchases"]).median()))
    # 16 times the customers: intervals about 4 times narrower.
    assert 2.5 < widths[0] / widths[1] < 6


def test_interval_levels_are_checked():
    with pytest.raises(ValueError, match="percentiles"):
        uncertainty.intervals("bgnbd", TRUE_BGNBD, [1], [1], [2], horizon=1.0, lower=0.9, upper=0.1)


def test_the_simulator_follows_bgnbd():
    """The ground truth itself: mean repeat purchases by T match BG/NBD's E[X(T)] (FHL eq. 7),
    and the holdout matches the conditional expectation of each customer (eq. 10)."""
    from scipy.special import hyp2f1

    r, alpha, a, b = TRUE_BGNBD.values()
    sim = simulation.simulate_bgnbd(TRUE_BGNBD, 20_000, T_max=52.0, holdout_length=26.0, seed=11)
    T = sim.T
    expected_x = (
        (a + b - 1)
        / (a - 1)
        * (1 - (alpha / (alpha + T)) ** r * hyp2f1(r, b, a + b - 1, T / (alpha + T)))
    )
    se = sim.x.std() / np.sqrt(sim.x.size)
    assert abs(sim.x.mean() - expected_x.mean()) < 4 * se
    predicted = scoring.expected_purchases(TRUE_BGNBD, 26.0, sim.x, sim.t_x, sim.T)
    se = sim.holdout_purchases.std() / np.sqrt(sim.x.size)
    assert abs(sim.holdout_purchases.mean() - predicted.mean()) < 4 * se
