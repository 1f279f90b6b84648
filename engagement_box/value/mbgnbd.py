"""MBG/NBD (Batislam, Denizel & Filiztekin 2007): log-likelihood with gradient, fit and scores.

BG/NBD lets a customer drop out only after a repeat purchase; MBG/NBD also lets a one-time buyer
drop out right after the first purchase, so P(alive) < 1 even for x = 0. Per customer, with
p4 the weight of the "dropped out after the last purchase" branch:

    log L = log G(r+x) - log G(r) + r log alpha
          + log B(a, b+x+1) - log B(a, b) - (r+x) log(alpha+T)
          + log(1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x))

The same formulas as lifetimes' `ModifiedBetaGeoFitter` (tests compare both); written here with a
closed-form gradient so that the fit on grouped rows stays fast.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import digamma, expit, gammaln

from engagement_box.value.fitting import FitResult, _bgnbd_input_problem, _params
from engagement_box.value.grouping import _distinct
from engagement_box.value.mle import fit_log_params
from engagement_box.value.special import scaled_hyp2f1
from engagement_box.value.summary import TimeUnit, _check_unit

MBGNBD_PARAMS = ("r", "alpha", "a", "b")


def _log_odds_dead(r, alpha, a, b, x, t_x, T):
    """log of a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x): the odds of having dropped out."""
    return np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))


def _row_log_likelihood(r, alpha, a, b, x, t_x, T) -> np.ndarray:
    head = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    beta_part = gammaln(a + b) + gammaln(b + x + 1) - gammaln(b) - gammaln(a + b + x + 1)
    odds = _log_odds_dead(r, alpha, a, b, x, t_x, T)
    return head + beta_part - (r + x) * np.log(alpha + T) + np.logaddexp(0.0, odds)


def mbgnbd_log_likelihood(
    params: Mapping[str, float] | FitResult, x: Any, t_x: Any, T: Any, weights: Any = None
) -> float:
    """Total MBG/NBD log-likelihood of (x, t_x, T) in the data's time unit."""
    r, alpha, a, b = _params(params, MBGNBD_PARAMS)
    x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float).ravel()
    return float(w @ _row_log_likelihood(r, alpha, a, b, x, t_x, T))


def _objective(x, t_x, T, w):
    """Mean negative log-likelihood of log parameters, with its gradient. Terms in x alone are
    summed per distinct x, logs of alpha + T and alpha + t_x taken per distinct value."""
    wsum = float(w.sum())
    ux, ix = _distinct(x)
    wx = np.bincount(ix, weights=w, minlength=ux.shape[0])
    uT, iT = _distinct(T)
    ut, it = _distinct(t_x)
    wT = np.bincount(iT, weights=w, minlength=uT.shape[0])
    wxT = np.bincount(iT, weights=w * x, minlength=uT.shape[0])

    def nll(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        # A step of the optimiser can overflow a parameter (exp(log b) = inf on a tiny or
        # all-identical retailer): the value is then not finite and the step is rejected below,
        # and a fit's parameters are range-checked (`check_param_range`), so no warning.
        with np.errstate(all="ignore"):
            r, alpha, a, b = np.exp(log_params)
            ab = a + b
            log_T, log_t = np.log(alpha + uT), np.log(alpha + ut)
            L = log_T[iT] - log_t[it]  # log((alpha+T)/(alpha+t_x)) per row
            odds = (r + x) * L + (np.log(a) - np.log(b + ux))[ix]
            p4 = expit(odds)
            wp4 = w * p4
            s4x = np.bincount(ix, weights=wp4, minlength=ux.shape[0])
            value = (
                wx @ (gammaln(r + ux) + gammaln(b + ux + 1) - gammaln(ab + ux + 1))
                + wsum * (r * np.log(alpha) - gammaln(r) + gammaln(ab) - gammaln(b))
                - (r * wT + wxT) @ log_T
                + w @ np.logaddexp(0.0, odds)
            )
            inv_T, inv_t = 1.0 / (alpha + uT), 1.0 / (alpha + ut)
            dg_abx = wx @ digamma(ab + ux + 1)
            g = np.array(
                [
                    wx @ digamma(r + ux)
                    + wsum * (np.log(alpha) - digamma(r))
                    - wT @ log_T
                    + wp4 @ L,
                    wsum * r / alpha
                    - (r * wT + wxT) @ inv_T
                    + wp4 @ ((r + x) * (inv_T[iT] - inv_t[it])),
                    -dg_abx + wsum * digamma(ab) + s4x.sum() / a,
                    wx @ digamma(b + ux + 1)
                    - dg_abx
                    + wsum * (digamma(ab) - digamma(b))
                    - s4x @ (1.0 / (b + ux)),
                ]
            )
        value = -float(value) / wsum
        if not np.isfinite(value):
            return np.inf, np.zeros(4)
        return value, -g * np.array([r, alpha, a, b]) / wsum

    return nll


def fit_mbgnbd(
    x: Any,
    t_x: Any,
    T: Any,
    *,
    time_unit: TimeUnit = "D",
    raise_on_failure: bool = True,
    counts: Any = None,
) -> FitResult:
    """Fit MBG/NBD by maximum likelihood on the distinct (x, t_x, T) rows with counts as weights.

    The same input rules and typed failures as `fit_bgnbd`; `counts` as in `fit_bgnbd`."""
    _check_unit(time_unit)
    return fit_log_params(
        "mbgnbd",
        MBGNBD_PARAMS,
        _objective,
        x,
        t_x,
        T,
        time_unit=time_unit,
        raise_on_failure=raise_on_failure,
        check_input=_bgnbd_input_problem,
        counts=counts,
    )


def mbgnbd_p_alive(params: Mapping[str, float] | FitResult, x: Any, t_x: Any, T: Any) -> np.ndarray:
    """P(alive) = 1 / (1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x)), below 1 also for x = 0."""
    r, alpha, a, b = _params(params, MBGNBD_PARAMS)
    x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
    return expit(-_log_odds_dead(r, alpha, a, b, x, t_x, T))


def mbgnbd_expected_purchases(
    params: Mapping[str, float] | FitResult, t: Any, x: Any, t_x: Any, T: Any
) -> np.ndarray:
    """Expected purchases in (T, T + t] (Batislam et al. 2007, eq. 14), as lifetimes computes it:
    growth(t; x, T) * P(alive)."""
    x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
    return mbgnbd_growth(params, t, x, T) * mbgnbd_p_alive(params, x, t_x, T)


def mbgnbd_growth(params: Mapping[str, float] | FitResult, t: Any, x: Any, T: Any) -> np.ndarray:
    """Expected purchases in (T, T + t] of a customer alive at T:
    (a+b+x)/(a-1) * (1 - 2F1(r+x, b+x+1; a+b+x; z) (1-z)^(r+x)), z = t/(alpha+T+t), with the
    Euler transform of 2F1 where the direct series overflows."""
    r, alpha, a, b = _params(params, MBGNBD_PARAMS)
    x, T, t = (np.asarray(v, dtype=float) for v in (x, T, t))
    _a, _b, _c = r + x, b + x + 1, a + b + x
    z = t / (alpha + T + t)
    with np.errstate(divide="ignore"):
        ln_scale = (r + x) * np.log1p(-z)
    return (a + b + x) / (a - 1) * (1 - scaled_hyp2f1(_a, _b, _c, z, ln_scale))
