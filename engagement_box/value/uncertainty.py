"""How sure each customer's expected purchases and CLV are: intervals from parameter uncertainty.

Method (docs/METRICS.md, "Uncertainty of a customer's value"):

1. The fitted log parameters are approximately normal with covariance = the inverse of the
   observed information, the Hessian of the total negative log-likelihood at the optimum,
   computed on the grouped rows with their counts as weights (closed form for BG/NBD and
   Gamma-Gamma, central differences of the analytic gradient for MBG/NBD and Pareto/NBD).
2. Each score g (expected purchases over the horizon, discounted purchases, E[M]) is carried
   through that distribution on the log scale by its gradient (the delta method):
   sd(log g) = sqrt(grad(log g)' C grad(log g)), gradients by forward differences, P(alive)
   once per distinct (x, t_x, T) row and the purchase growth once per distinct (x, T).
3. The interval is exp(log g +- z sd), z the normal quantile of the level (1.2816 for the 10th and
   90th percentiles). CLV = discounted purchases * E[M] * margin; the purchase and spend models
   are fitted separately, so their log variances add.
This covers the uncertainty of the population parameters only, not the randomness of what one
customer will do (a customer's purchases scatter far more than their expectation).
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl
from scipy.special import ndtri  # the normal quantile (scipy.stats costs 1.6 s to import)

from engagement_box.value import mbgnbd, pareto, scoring
from engagement_box.value.fitting import (
    GAMMA_GAMMA_PARAMS,
    FitResult,
    ModelFitError,
    _params,
)
from engagement_box.value.grouping import merge_rows, unique_rows
from engagement_box.value.likelihood import _bgnbd_objective, _gamma_gamma_objective
from engagement_box.value.mle import TIME_SCALE_PARAMS, gradient_hessian
from engagement_box.value.purchase_models import discounted_purchases, get_model, grouped_parts
from engagement_box.value.summary import DAYS_PER_UNIT, TimeUnit, _check_unit

_STEP = 1e-4  # central-difference step in log parameters


def log_param_covariance(
    name: str, params: Mapping[str, float] | FitResult, x: Any, t_x: Any, T: Any, counts=None
) -> np.ndarray:
    """Covariance of the log parameters (in the model's parameter order): the inverse observed
    information on the distinct (x, t_x, T) rows with counts as weights (`counts`: the rows
    given are grouped already, counts[i] customers each)."""
    if counts is None:
        (gx, gt, gT), _, counts = unique_rows(x, t_x, T, return_inverse=False)
    else:
        (gx, gt, gT), counts = merge_rows(x, t_x, T, counts=counts)
    return _grouped_log_param_covariance(name, params, gx, gt, gT, counts.astype(float))


def _grouped_log_param_covariance(
    name: str, params: Any, gx: np.ndarray, gt: np.ndarray, gT: np.ndarray, w: np.ndarray
) -> np.ndarray:
    """`log_param_covariance` on distinct rows with their counts `w`."""
    model = get_model(name)
    values = np.array(_params(params, model.params))
    scale = float(gT.max())
    lp = np.log(values) - np.array(
        [np.log(scale) if k in TIME_SCALE_PARAMS else 0.0 for k in model.params]
    )
    if name == "bgnbd":
        H = _bgnbd_objective(gx, gt / scale, gT / scale, w, 0.0).derivatives(lp, True)[2]
    else:
        objective = {"mbgnbd": mbgnbd._objective, "pareto_nbd": pareto._objective}[name]
        H = gradient_hessian(objective(gx, gt / scale, gT / scale, w), lp, _STEP)
    return _inverse_information(name, H * w.sum())


def gamma_gamma_log_covariance(
    params: Mapping[str, float] | FitResult, x: Any, m: Any, counts: Any = None
):
    """Covariance of Gamma-Gamma's log parameters (p, q, v) on the repeat buyers with m > 0;
    with `counts`, the (x, m) rows are grouped rows standing for counts[i] customers each."""
    x, m = np.asarray(x, dtype=float).ravel(), np.asarray(m, dtype=float).ravel()
    keep = np.isfinite(x) & np.isfinite(m) & (x > 0) & (m > 0)
    # Not grouped: mean spends are nearly all distinct, so sorting them would cost more than the
    # closed-form Hessian on every row.
    w = np.ones(int(keep.sum())) if counts is None else np.asarray(counts, dtype=float)[keep]
    lp = np.log(_params(params, GAMMA_GAMMA_PARAMS))
    H = _gamma_gamma_objective(x[keep], m[keep], w, 0.0).derivatives(lp, True)[2]
    return _inverse_information("gamma_gamma", H * w.sum())


def _inverse_information(name: str, info: np.ndarray) -> np.ndarray:
    info = (info + info.T) / 2
    try:
        np.linalg.cholesky(info)
    except np.linalg.LinAlgError as exc:
        raise ModelFitError(
            name,
            "degenerate",
            "the likelihood is flat in some direction at the fitted parameters, so their "
            "uncertainty is unbounded on this data",
        ) from exc
    return np.linalg.inv(info)


def intervals(
    name: str,
    params: Mapping[str, float] | FitResult,
    x: Any,
    t_x: Any,
    T: Any,
    m: Any = None,
    *,
    horizon: float,
    gamma_gamma: Mapping[str, float] | FitResult | None = None,
    months: int = 12,
    monthly_discount_rate: float = 0.01,
    margin: float = 1.0,
    time_unit: TimeUnit = "D",
    days_per_month: float = 30.0,
    lower: float = 0.1,
    upper: float = 0.9,
    covariance: np.ndarray | None = None,
    gamma_gamma_covariance: np.ndarray | None = None,
) -> pl.DataFrame:
    """Per customer, in input order: expected_purchases (over `horizon`, model time unit) with
    its `lower`/`upper` percentiles (columns expected_purchases_p10, _p90 for the defaults), and
    with `gamma_gamma` and m also clv, clv_p10, clv_p90 (CLV as `purchase_models.score_with`).

    `covariance` / `gamma_gamma_covariance` reuse covariances already computed."""
    if not 0 < lower < upper < 1:
        raise ValueError("lower and upper must be percentiles with 0 < lower < upper < 1")
    model = get_model(name)
    x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
    (ux, ut, uT), inverse, counts = unique_rows(x, t_x, T)
    cov = covariance
    if cov is None:
        cov = _grouped_log_param_covariance(name, params, ux, ut, uT, counts.astype(float))
    values = np.array(_params(params, model.params))
    (px, pT), pair_of_row, _ = unique_rows(ux, uT)
    step = days_per_month / DAYS_PER_UNIT[_check_unit(time_unit)]
    times = [float(horizon)]
    with_clv = gamma_gamma is not None and m is not None
    if with_clv:
        times += list(step * np.arange(1, months + 1, dtype=float))

    alive = model.alive_on(ux, ut, uT)

    def scores(log_values: np.ndarray) -> np.ndarray:
        p = dict(zip(model.params, np.exp(log_values), strict=True))
        parts = grouped_parts(name, p, times, ux, ut, uT, (px, pT, pair_of_row), alive)
        log_alive = np.log(parts.p_alive)
        out = [np.log(parts.growth[0])[pair_of_row] + log_alive]
        if with_clv:
            discounted = discounted_purchases(parts.growth[1:], monthly_discount_rate)
            out.append(np.log(discounted)[pair_of_row] + log_alive)
        return np.stack(out)

    centre = scores(np.log(values))
    var = _delta_variance(scores, np.log(values), cov, centre)
    z_lo, z_hi = ndtri(lower), ndtri(upper)
    lo_name, hi_name = f"p{round(100 * lower)}", f"p{round(100 * upper)}"
    sd = np.sqrt(var[0])[inverse]
    out = {
        "expected_purchases": np.exp(centre[0])[inverse],
        f"expected_purchases_{lo_name}": np.exp(centre[0][inverse] + z_lo * sd),
        f"expected_purchases_{hi_name}": np.exp(centre[0][inverse] + z_hi * sd),
    }
    if with_clv:
        log_value, log_var = _order_value_log(gamma_gamma, x, m, gamma_gamma_covariance)
        log_clv = centre[1][inverse] + log_value + np.log(margin)
        sd_clv = np.sqrt(var[1][inverse] + log_var)
        out["clv"] = np.exp(log_clv)
        out[f"clv_{lo_name}"] = np.exp(log_clv + z_lo * sd_clv)
        out[f"clv_{hi_name}"] = np.exp(log_clv + z_hi * sd_clv)
    return pl.DataFrame(out)


def _delta_variance(
    scores: Any, lp: np.ndarray, cov: np.ndarray, centre: np.ndarray | None = None
) -> np.ndarray:
    """Var of each row of scores(lp) by the delta method, gradients by forward differences
    (a relative error of about 1e-4 on the spread, far below what matters)."""
    base = scores(lp) if centre is None else centre
    grads = []
    for i in range(lp.shape[0]):
        e = np.zeros_like(lp)
        e[i] = _STEP
        grads.append((scores(lp + e) - base) / _STEP)
    G = np.stack(grads, axis=-1)  # (scores, rows, params)
    return np.maximum(np.einsum("srp,pq,srq->sr", G, cov, G), 0.0)


def _order_value_log(gamma_gamma: Any, x: np.ndarray, m: Any, cov: np.ndarray | None):
    """(log E[M], Var log E[M]) per customer, E[M] = p (v + x m) / (p x + q - 1) from
    Gamma-Gamma; the gradient of log E[M] in the log parameters is in closed form."""
    m = np.asarray(m, dtype=float).ravel()
    p, q, v = values = np.array(_params(gamma_gamma, GAMMA_GAMMA_PARAMS))
    if cov is None:
        cov = gamma_gamma_log_covariance(gamma_gamma, x, m)
    params = dict(zip(GAMMA_GAMMA_PARAMS, values, strict=True))
    log_value = np.log(scoring.expected_order_value(params, x, m))
    denom = p * x + q - 1.0
    G = np.stack([(q - 1.0) / denom, -q / denom, v / (v + x * m)])  # d log E[M] / d log (p, q, v)
    return log_value, np.maximum(np.einsum("ir,ij,jr->r", G, cov, G), 0.0)
