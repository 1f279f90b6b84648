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
per distinct pair among the rows' (x, t_x) and (x, T).

The fit's gradient is exact given d log D per pair (`_tail_gradient`): dD/dalpha and dD/dbeta are
D with r+x or s one higher (differentiation under the integral), d/dr and d/ds a five-point
stencil (error about 1e-12). A gradient then costs about two likelihood evaluations instead of
eight, and the covariance comes from gradient differences (`uncertainty.log_param_covariance`).
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import digamma, expit, gammaln, hyp2f1

from engagement_box.value.fitting import FitResult, _bgnbd_input_problem, _params
from engagement_box.value.grouping import _distinct, unique_rows
from engagement_box.value.mle import fit_log_params
from engagement_box.value.summary import TimeUnit, _check_unit

PARETO_NBD_PARAMS = ("r", "alpha", "s", "beta")
_H = 1e-3  # finite-difference step of log D in log parameters


def _hyp2f1_one(b: Any, c: Any, z: Any) -> np.ndarray:
    """2F1(1, b; c; z). scipy's returns NaN where c - b is a whole number of about 99 or more
    and z > 0.9 (a review: r = 2, s = 3, x = 200), which the floor below then hid, giving a
    P(alive) of 0.998 for 0.533; there it is taken at c moved by a relative 1e-12, a change
    far below the result's precision (the function is smooth in c)."""
    value = hyp2f1(1.0, b, c, z)
    failed = np.isnan(value)
    if failed.any():
        value = np.where(failed, hyp2f1(1.0, b, np.asarray(c) * (1.0 + 1e-12), z), value)
    return value


def _log_tail(r: float, alpha: float, s: float, beta: float, x: np.ndarray, tau: np.ndarray):
    """log D(tau): log of the integral from tau to infinity of (alpha+y)^-(r+x) (beta+y)^-(s+1)."""
    k = r + s + x
    with np.errstate(divide="ignore", invalid="ignore"):
        if alpha >= beta:
            z = (alpha - beta) / (alpha + tau)
            head = -(r + x) * np.log(alpha + tau) - s * np.log(beta + tau)
            return head + np.log(_hyp2f1_one(r + x, k + 1.0, z)) - np.log(k)
        z = (beta - alpha) / (beta + tau)
        head = -(s + 1.0) * np.log(beta + tau) - (r + x - 1.0) * np.log(alpha + tau)
        return head + np.log(_hyp2f1_one(s + 1.0, k + 1.0, z)) - np.log(k)


class _Pairs:
    """The distinct (x, tau) pairs among the rows' (x, t_x) and (x, T): D and the alive term are
    computed once per pair; `inv_t` and `inv_T` give each row's (x, t_x) and (x, T) pair."""

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray):
        n = x.shape[0]
        (self.px, self.ptau), inverse, _ = unique_rows(
            np.concatenate([x, x]), np.concatenate([t_x, T])
        )
        assert inverse is not None
        self.inv_t, self.inv_T = inverse[:n], inverse[n:]
        self.x, self.t_x, self.T = x, t_x, T
        self.dx, self.ix = _distinct(x)
        self.gap = T - t_x
        with np.errstate(divide="ignore"):
            self.log_gap = np.log(self.gap)


def _log_alive_part(params: tuple[float, ...], pairs: _Pairs) -> tuple[np.ndarray, np.ndarray]:
    """(log of the alive-at-T term, log of the died-before-T term) inside L's brackets, per row.

    The died term is s (D(t_x) - D(T)), -inf where t_x == T; the alive term and D depend on
    (x, tau) only and are computed per distinct pair."""
    r, alpha, s, beta = params
    px, ptau = pairs.px, pairs.ptau
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_beta_tau = np.log(beta + ptau)
        alive_pair = -(r + px) * np.log(alpha + ptau) - s * log_beta_tau
        alive = alive_pair[pairs.inv_T]
        log_d = _log_tail(r, alpha, s, beta, px, ptau)
        log_dt, log_dT = log_d[pairs.inv_t], log_d[pairs.inv_T]
        diff = log_dt + np.log1p(-np.exp(np.minimum(log_dT - log_dt, 0.0)))
        # The integrand is decreasing, so the integral is at least gap * integrand(T).
        floor = pairs.log_gap + (alive_pair - log_beta_tau)[pairs.inv_T]
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
    return pareto_p_alive_on(x, t_x, T)(params)


def pareto_p_alive_on(x: Any, t_x: Any, T: Any):
    """`pareto_p_alive` on fixed rows as a function of the parameters: the distinct (x, tau)
    pairs are found once (for repeated calls, e.g. the delta method's)."""
    x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
    pairs = _Pairs(x, t_x, T)

    def p_alive(params: Mapping[str, float] | FitResult) -> np.ndarray:
        alive, dead = _log_alive_part(tuple(_params(params, PARETO_NBD_PARAMS)), pairs)
        return np.exp(alive - np.logaddexp(alive, dead))

    return p_alive


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


def _tail_gradient(log_params: np.ndarray, x: np.ndarray, tau: np.ndarray, h: float = _H):
    """(log D, its gradient in log parameters (4, pairs)) per (x, tau) pair.

    dD/dalpha = -(r+x) times D with r+x one higher, dD/dbeta = -(s+1) times D with s one
    higher (both exact, by differentiating under the integral); the r and s derivatives by a
    five-point stencil of log D with step `h` (error of order h^4)."""
    r, alpha, s, beta = np.exp(log_params)
    value = _log_tail(r, alpha, s, beta, x, tau)
    grad = np.empty((4, x.shape[0]))
    for i in (0, 2):  # five-point stencil: error h^4, rounding about 1e-12
        e = np.zeros(4)
        e[i] = h
        f = [_log_tail(*np.exp(log_params + k * e), x, tau) for k in (2, 1, -1, -2)]
        grad[i] = (8.0 * (f[1] - f[2]) - (f[0] - f[3])) / (12.0 * h)
    grad[1] = -alpha * (r + x) * np.exp(_log_tail(r, alpha, s, beta, x + 1.0, tau) - value)
    grad[3] = -beta * (s + 1.0) * np.exp(_log_tail(r, alpha, s + 1.0, beta, x, tau) - value)
    return value, grad


def _objective(x, t_x, T, w):
    """Mean negative log-likelihood of log parameters with its gradient, on rows (x, t_x, T)
    with weights w.

    Per row, log L = head(x) + alive(x, T) + log(1 + exp(delta)), delta = dead - alive. head and
    alive are summed per distinct x and per (x, T) pair with the rows' weights; only the last
    term is computed per row. Its gradient is exact given that of log D per pair
    (`_tail_gradient`): with q = D(T)/D(t_x) and pi = P(died before T | x, t_x, T) = expit(delta),
    d log L = d head + (1 - pi) d alive + pi d dead, and
    d dead = d log s + (d log D(t_x) - q d log D(T)) / (1 - q), or the floor's gradient where the
    floor holds."""
    pairs = _Pairs(x, t_x, T)
    n_pairs = pairs.px.shape[0]
    wsum = float(w.sum())
    w_x = np.bincount(pairs.ix, weights=w, minlength=pairs.dx.shape[0])
    w_T = np.bincount(pairs.inv_T, weights=w, minlength=n_pairs)
    # Rows with t_x < T: only they can have died before T (the others add head and alive only).
    live = pairs.gap > 0
    inv_t, inv_T, log_gap, w_live = (
        pairs.inv_t[live],
        pairs.inv_T[live],
        pairs.log_gap[live],
        w[live],
    )

    def per_pair(rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return np.bincount(rows, weights=weights, minlength=n_pairs)

    def nll(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        with np.errstate(all="ignore"):  # an overflowed parameter: see mbgnbd's objective
            params = np.exp(log_params)
            r, alpha, s, beta = params
            px, pt = pairs.px, pairs.ptau
            log_d, grad_d = _tail_gradient(log_params, px, pt)
            log_a, log_b = np.log(alpha + pt), np.log(beta + pt)
            alive = -(r + px) * log_a - s * log_b  # per pair (x, tau), used at tau = T
            u = log_d[inv_t]
            q = np.exp(np.minimum(log_d[inv_T] - u, 0.0))
            # delta = log s + log(D(t_x) - D(T)) - alive, held at or above the floor: the
            # integrand is decreasing, so the integral is at least gap * integrand(T).
            diff = u + np.log1p(-q) - alive[inv_T]
            floor = log_gap - log_b[inv_T]
            floored = diff < floor
            delta = np.fmax(diff, floor) + np.log(s)
            value = (
                w_x @ (gammaln(r + pairs.dx) - gammaln(r))
                + wsum * (r * np.log(alpha) + s * np.log(beta))
                + w_T @ alive
                + w_live @ np.logaddexp(0.0, delta)
            )
            if not np.isfinite(value):
                return np.inf, np.zeros(4)
            w_dead = w_live * expit(delta)
            w_exact = np.where(floored, 0.0, w_dead)  # rows off the floor
            c = w_exact / (1.0 - q)
            w_alive_T = w_T - per_pair(inv_T, w_exact)
            # d alive / d (log r, log alpha, log s, log beta) per pair; the floor is alive
            # - log(beta + T) + log gap, so floored rows keep d alive and add that term's.
            d_alive = params[:, None] * np.stack(
                [-log_a, -(r + px) / (alpha + pt), -log_b, -s / (beta + pt)]
            )
            g = params * np.array(
                [
                    w_x @ digamma(r + pairs.dx) - wsum * (digamma(r) - np.log(alpha)),
                    wsum * r / alpha,
                    wsum * np.log(beta),
                    wsum * s / beta,
                ]
            )
            g[2] += w_dead.sum()  # d log s of the died term
            g += d_alive @ w_alive_T + grad_d @ (per_pair(inv_t, c) - per_pair(inv_T, c * q))
            if floored.any():
                w_floor = per_pair(inv_T[floored], w_dead[floored])
                g[3] -= (beta / (beta + pt)) @ w_floor
        return -float(value) / wsum, -g / wsum

    return nll


def fit_pareto_nbd(
    x: Any,
    t_x: Any,
    T: Any,
    *,
    time_unit: TimeUnit = "D",
    raise_on_failure: bool = True,
    counts: Any = None,
) -> FitResult:
    """Fit Pareto/NBD by maximum likelihood on the distinct (x, t_x, T) rows with counts as weights.

    The same input rules and typed failures as `fit_bgnbd`; `counts` as in `fit_bgnbd`. The
    optimiser works on log parameters with the gradient of `_objective`; a fit on a subsample of
    the rows gives its start.
    """
    _check_unit(time_unit)
    return fit_log_params(
        "pareto_nbd",
        PARETO_NBD_PARAMS,
        _objective,
        x,
        t_x,
        T,
        time_unit=time_unit,
        raise_on_failure=raise_on_failure,
        check_input=_bgnbd_input_problem,
        counts=counts,
    )
