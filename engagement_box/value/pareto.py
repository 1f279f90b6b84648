"""Pareto/NBD (Schmittlein, Morrison & Colombo 1987): a stable log-likelihood, fit and scores.

lifetimes' `ParetoNBDFitter` returns NaN on today's scipy for heavy buyers whose last purchase is
at the end of the window (e.g. x = 200, t_x = T), so the likelihood is written here (Fader &
Hardie's 2005 note on the Pareto/NBD, eqs. 18-22):

    L = G(r+x) alpha^r beta^s / G(r) * [ (alpha+T)^-(r+x) (beta+T)^-s + s * (D(t_x) - D(T)) ]
    D(tau) = integral from tau to infinity of (alpha+y)^-(r+x) (beta+y)^-(s+1) dy

s * (D(t_x) - D(T)) is the "dropped out between t_x and T" part (the note's s/(r+s+x) * A0).
D is a 2F1, evaluated after the Euler transform as 2F1(1, b'; r+s+x+1; z) with 0 <= z < 1: a
series of positive terms, finite for every z < 1 (the original form grows like (1-z)^-(r+x)).
The difference is taken in logs, log D(t_x) + log(1 - D(T)/D(t_x)); it is exactly zero when
t_x = T, and where rounding would push it below the integral's lower bound
(T - t_x) * integrand(T), that bound holds it. D depends on (x, tau) only, so it is computed once
per distinct (x, t_x) and (x, T) pair.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import gammaln, hyp2f1

from engagement_box.value.fitting import FitResult, _bgnbd_input_problem, _params
from engagement_box.value.grouping import _distinct, unique_rows
from engagement_box.value.mle import fit_log_params
from engagement_box.value.summary import TimeUnit, _check_unit

PARETO_NBD_PARAMS = ("r", "alpha", "s", "beta")


def _log_tail(r: float, alpha: float, s: float, beta: float, x: np.ndarray, tau: np.ndarray):
    """log D(tau): log of the integral from tau to infinity of (alpha+y)^-(r+x) (beta+y)^-(s+1)."""
    k = r + s + x
    with np.errstate(divide="ignore", invalid="ignore"):
        if alpha >= beta:
            z = (alpha - beta) / (alpha + tau)
            head = -(r + x) * np.log(alpha + tau) - s * np.log(beta + tau)
            return head + np.log(hyp2f1(1.0, r + x, k + 1.0, z)) - np.log(k)
        z = (beta - alpha) / (beta + tau)
        head = -(s + 1.0) * np.log(beta + tau) - (r + x - 1.0) * np.log(alpha + tau)
        return head + np.log(hyp2f1(1.0, s + 1.0, k + 1.0, z)) - np.log(k)


class _Pairs:
    """The distinct (x, t_x) and (x, T) pairs of the rows: D is computed once per pair."""

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray):
        (self.ux, self.ut), self.inv_t, _ = unique_rows(x, t_x)
        (self.vx, self.vT), self.inv_T, _ = unique_rows(x, T)
        self.x, self.t_x, self.T = x, t_x, T
        self.dx, self.ix = _distinct(x)
        self.gap = T - t_x
        with np.errstate(divide="ignore"):
            self.log_gap = np.log(self.gap)


def _log_alive_part(params: tuple[float, ...], pairs: _Pairs) -> tuple[np.ndarray, np.ndarray]:
    """(log of the alive-at-T term, log of the died-before-T term) inside L's brackets, per row.

    The died term is s (D(t_x) - D(T)), -inf where t_x == T; the alive term and D(T) depend on
    (x, T) only and are computed per distinct pair."""
    r, alpha, s, beta = params
    vx, vT = pairs.vx, pairs.vT
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_beta_T = np.log(beta + vT)
        alive_pair = -(r + vx) * np.log(alpha + vT) - s * log_beta_T
        alive = alive_pair[pairs.inv_T]
        log_dt = _log_tail(r, alpha, s, beta, pairs.ux, pairs.ut)[pairs.inv_t]
        log_dT = _log_tail(r, alpha, s, beta, vx, vT)[pairs.inv_T]
        diff = log_dt + np.log1p(-np.exp(np.minimum(log_dT - log_dt, 0.0)))
        # The integrand is decreasing, so the integral is at least gap * integrand(T).
        floor = pairs.log_gap + (alive_pair - log_beta_T)[pairs.inv_T]
        dead = np.where(pairs.gap > 0, np.fmax(diff, floor), -np.inf) + np.log(s)
    return alive, dead


def _row_log_likelihood(params: tuple[float, ...], pairs: _Pairs) -> np.ndarray:
    r, alpha, s, beta = params
    alive, dead = _log_alive_part(params, pairs)
    head = (gammaln(r + pairs.dx) - gammaln(r) + r * np.log(alpha) + s * np.log(beta))[pairs.ix]
    return head + np.logaddexp(alive, dead)


def pareto_nbd_log_likelihood(
    params: Mapping[str, float] | FitResult, x: Any, t_x: Any, T: Any, weights: Any = None
) -> float:
    """Total Pareto/NBD log-likelihood of (x, t_x, T) in the data's time unit."""
    p = tuple(_params(params, PARETO_NBD_PARAMS))
    x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float).ravel()
    return float(w @ _row_log_likelihood(p, _Pairs(x, t_x, T)))


def pareto_p_alive(params: Mapping[str, float] | FitResult, x: Any, t_x: Any, T: Any) -> np.ndarray:
    """P(alive at T | x, t_x, T) = alive term / (alive term + died term)."""
    p = tuple(_params(params, PARETO_NBD_PARAMS))
    x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
    alive, dead = _log_alive_part(p, _Pairs(x, t_x, T))
    return np.exp(alive - np.logaddexp(alive, dead))


def pareto_expected_purchases(
    params: Mapping[str, float] | FitResult, t: Any, x: Any, t_x: Any, T: Any
) -> np.ndarray:
    """Expected purchases in (T, T + t]: P(alive) * `pareto_growth`."""
    x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
    return pareto_p_alive(params, x, t_x, T) * pareto_growth(params, t, x, T)


def pareto_growth(params: Mapping[str, float] | FitResult, t: Any, x: Any, T: Any) -> np.ndarray:
    """Expected purchases in (T, T + t] of a customer alive at T: (r+x)(beta+T) / ((alpha+T)(s-1))
    * (1 - ((beta+T)/(beta+T+t))^(s-1)), with its limit (beta+T) log((beta+T+t)/(beta+T)) at
    s = 1."""
    r, alpha, s, beta = _params(params, PARETO_NBD_PARAMS)
    x, T, t = (np.asarray(v, dtype=float) for v in (x, T, t))
    log_ratio = np.log1p(t / (beta + T))  # log((beta+T+t)/(beta+T))
    if abs(s - 1.0) < 1e-9:
        horizon = log_ratio
    else:
        horizon = -np.expm1(-(s - 1.0) * log_ratio) / (s - 1.0)
    return (r + x) * (beta + T) / (alpha + T) * horizon


def _objective(x, t_x, T, w):
    wsum = float(w.sum())
    pairs = _Pairs(x, t_x, T)

    def nll(log_params: np.ndarray) -> float:
        p = tuple(np.exp(log_params))
        ll = w @ _row_log_likelihood(p, pairs)
        return -float(ll) / wsum if np.isfinite(ll) else np.inf

    return nll


def fit_pareto_nbd(
    x: Any,
    t_x: Any,
    T: Any,
    *,
    time_unit: TimeUnit = "D",
    raise_on_failure: bool = True,
) -> FitResult:
    """Fit Pareto/NBD by maximum likelihood on the distinct (x, t_x, T) rows with counts as weights.

    The same input rules and typed failures as `fit_bgnbd`. The optimiser works on log parameters
    with numerical gradients of the stable likelihood above; a fit on a subsample of the rows
    gives its start.
    """
    _check_unit(time_unit)
    return fit_log_params(
        "pareto_nbd",
        PARETO_NBD_PARAMS,
        _objective,
        pareto_nbd_log_likelihood,
        x,
        t_x,
        T,
        time_unit=time_unit,
        raise_on_failure=raise_on_failure,
        check_input=_bgnbd_input_problem,
    )
