"""Per-customer scores from fitted parameters: P(alive), expected purchases, E[M], CLV."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit

from engagement_box.value.fitting import (
    BGNBD_PARAMS,
    GAMMA_GAMMA_PARAMS,
    FitResult,
    _params,
)
from engagement_box.value.grouping import unique_rows
from engagement_box.value.special import scaled_hyp2f1
from engagement_box.value.summary import DAYS_PER_UNIT, TimeUnit, _check_unit


def p_alive(params: Mapping[str, float] | FitResult, x: Any, t_x: Any, T: Any) -> np.ndarray:
    """BG/NBD probability that each customer is still active (1 for x = 0)."""
    r, alpha, a, b = _params(params, BGNBD_PARAMS)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    log_div = (r + x) * np.log((alpha + T) / (alpha + t_x)) + np.log(a / (b + np.maximum(x, 1) - 1))
    return np.where(x == 0, 1.0, expit(-log_div))


def expected_purchases(
    params: Mapping[str, float] | FitResult, t: Any, x: Any, t_x: Any, T: Any
) -> np.ndarray:
    """Conditional expected number of repeat purchases in the next `t` (FHL 2005 eq. 10).

    All times in the model's unit; `t` may be a scalar or an array broadcastable with x.
    Uses the Euler transform of 2F1 where the direct series overflows, as lifetimes does.
    The 2F1 factor depends on (t, x, T) only, so for a scalar `t` it is computed once per
    distinct (x, T) pair (far fewer than customers).
    """
    r, alpha, a, b = _params(params, BGNBD_PARAMS)
    t, x, t_x, T = (np.asarray(v, dtype=float) for v in (t, x, t_x, T))
    if t.ndim == 0 and x.ndim == 1 and x.shape == T.shape and x.shape[0] > 10_000:
        (ux, uT), inverse, _ = unique_rows(x, T)
        growth = _purchase_growth(r, alpha, a, b, t, ux, uT)[inverse]
    else:
        growth = _purchase_growth(r, alpha, a, b, t, x, T)
    return growth / _purchase_denominator(r, alpha, a, b, x, t_x, T)


def _purchase_growth(
    r: float, alpha: float, a: float, b: float, t: Any, x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """Numerator of FHL eq. 10: (a+b+x-1)/(a-1) * (1 - ((a+T)/(a+T+t))^(r+x) 2F1(...))."""
    _a = r + x
    _b = b + x
    _c = a + b + x - 1
    _z = t / (alpha + T + t)
    with np.errstate(divide="ignore", invalid="ignore"):  # a = 1: not finite, the caller says
        first = (a + b + x - 1) / (a - 1)
    second = 1 - scaled_hyp2f1(_a, _b, _c, _z, (r + x) * np.log((alpha + T) / (alpha + t + T)))
    return first * second


def _purchase_denominator(
    r: float, alpha: float, a: float, b: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """Denominator of FHL eq. 10: 1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (a / (b + x - 1)) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    return 1 + np.where(x > 0, ratio, 0.0)


def expected_order_value(params: Mapping[str, float] | FitResult, x: Any, m: Any) -> np.ndarray:
    """Gamma-Gamma E[M | x, m] = p (v + x m) / (p x + q - 1); the population mean for x = 0."""
    p, q, v = _params(params, GAMMA_GAMMA_PARAMS)
    x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
    weight = p * x / (p * x + q - 1)
    population_mean = v * p / (q - 1)
    return (1 - weight) * population_mean + weight * m


def clv(
    bgnbd: Mapping[str, float] | FitResult,
    gamma_gamma: Mapping[str, float] | FitResult,
    x: Any,
    t_x: Any,
    T: Any,
    m: Any,
    *,
    months: int = 12,
    monthly_discount_rate: float = 0.01,
    margin: float = 1.0,
    time_unit: TimeUnit = "D",
    days_per_month: float = 30.0,
) -> np.ndarray:
    """Discounted CLV over `months` months, per customer.

    CLV = sum_{k=1..H} (E[Y(k)] - E[Y(k-1)]) * E[M] * margin / (1 + d)^k, k in months of
    `days_per_month` days (30, as lifetimes' `customer_lifetime_value(freq='D')`). Note that
    lifetimes uses 4.345 weeks per month for freq='W'; pass `days_per_month=4.345 * 7` to match it.
    """
    return score_customers(
        bgnbd,
        gamma_gamma,
        x,
        t_x,
        T,
        m,
        months=months,
        monthly_discount_rate=monthly_discount_rate,
        margin=margin,
        time_unit=time_unit,
        days_per_month=days_per_month,
    )["clv"]


def score_customers(
    bgnbd: Mapping[str, float] | FitResult,
    gamma_gamma: Mapping[str, float] | FitResult,
    x: Any,
    t_x: Any,
    T: Any,
    m: Any,
    *,
    horizons: Sequence[float] = (),
    months: int = 12,
    monthly_discount_rate: float = 0.01,
    margin: float = 1.0,
    time_unit: TimeUnit = "D",
    days_per_month: float = 30.0,
) -> dict[str, Any]:
    """Every per-customer value at once: the same numbers as `p_alive`, `expected_purchases`,
    `expected_order_value` and `clv`, with their shared parts computed once.

    Returns {"p_alive", "expected_purchases" (one array per entry of `horizons`, in the model's
    time unit), "expected_order_value", "clv"}. E[Y(t)] = growth(t; x, T) / denominator(x, t_x, T)
    (FHL 2005 eq. 10) and P(alive) = 1 / denominator, so the denominator is computed once per
    customer and the growth terms (the 2F1 part) once per distinct (x, T) for all horizons and
    CLV months together. CLV discounts the monthly increments of E[Y] (see `clv`).
    """
    step = days_per_month / DAYS_PER_UNIT[_check_unit(time_unit)]
    r, alpha, a, b = _params(bgnbd, BGNBD_PARAMS)
    x, t_x, T, m = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T, m))
    denominator = _purchase_denominator(r, alpha, a, b, x, t_x, T)
    (ux, uT), inverse, _ = unique_rows(x, T)
    n_h = len(horizons)
    times = np.concatenate(
        [np.asarray(horizons, dtype=float), step * np.arange(1, months + 1, dtype=float)]
    )
    growth = _purchase_growth(r, alpha, a, b, times[:, None], ux[None, :], uT[None, :])
    per_month = np.diff(growth[n_h:], axis=0, prepend=0.0)
    discount = (1.0 + monthly_discount_rate) ** -np.arange(1, months + 1, dtype=float)
    order_value = expected_order_value(gamma_gamma, x, m)
    return {
        "p_alive": 1.0 / denominator,
        "expected_purchases": [growth[k][inverse] / denominator for k in range(n_h)],
        "expected_order_value": order_value,
        "clv": (discount @ per_month)[inverse] / denominator * order_value * margin,
    }


@dataclass(frozen=True)
class SpendIndependence:
    """Correlation of repeat frequency and mean repeat spend among repeat buyers with m > 0.

    Gamma-Gamma assumes the two are independent; |pearson| well above ~0.3 questions the model.
    """

    pearson: float | None
    spearman: float | None
    n_customers: int


def frequency_spend_correlation(x: Any, m: Any, counts: Any = None) -> SpendIndependence:
    """Pearson and Spearman correlation between x and m over customers with x > 0 and m > 0.
    With `counts`, each (x, m) row stands for that many customers (grouped rows): the same
    correlations as the rows expanded, computed from the counts. Computed with numpy (the
    weighted formulas, weight 1 per customer without counts; scipy.stats' pearsonr and spearmanr
    agree to 1e-12): importing scipy.stats costs about 0.25 CPU-s a run (0.55 in a bare
    process), and nothing else in a daily run imports it."""
    x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
    keep = np.isfinite(x) & np.isfinite(m) & (x > 0) & (m > 0)
    xs, ms = x[keep], m[keep]
    if counts is not None:
        weight = np.asarray(counts, dtype=float)[keep]
        keep_rows = weight > 0
        xs, ms, weight = xs[keep_rows], ms[keep_rows], weight[keep_rows]
    else:
        weight = np.ones(xs.shape[0])
    n = round(float(weight.sum()))
    if n < 3 or np.ptp(xs) == 0 or np.ptp(ms) == 0:
        return SpendIndependence(None, None, n)
    spearman = _weighted_pearson(_mid_ranks(xs, weight), _mid_ranks(ms, weight), weight)
    return SpendIndependence(_weighted_pearson(xs, ms, weight), spearman, n)


def _weighted_pearson(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> float:
    """Pearson's r of rows repeated `weight` times."""
    total = weight.sum()
    da = a - (weight * a).sum() / total
    db = b - (weight * b).sum() / total
    return float(
        (weight * da * db).sum() / np.sqrt((weight * da * da).sum() * (weight * db * db).sum())
    )


def _mid_ranks(values: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Each row's rank among the rows repeated `weight` times, ties at their mean rank (what
    `scipy.stats.rankdata` gives the expanded rows)."""
    distinct, inverse = np.unique(values, return_inverse=True)
    per_value = np.bincount(inverse, weights=weight, minlength=distinct.shape[0])
    below = np.cumsum(per_value) - per_value
    return (below + (per_value + 1) / 2)[inverse]
