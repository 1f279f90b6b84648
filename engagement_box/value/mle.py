"""Maximum likelihood on grouped sufficient statistics, for the models lifetimes cannot fit fast.

Used by the MBG/NBD and Pareto/NBD fits. The data are reduced to the distinct (x, t_x, T) rows
with their counts as weights (the same objective as one row per customer), times are divided by
the largest T (as lifetimes does) so every parameter starts near 1, and the optimiser works on
log parameters. Each model's objective returns its value with its gradient. A BFGS fit on a
deterministic subsample of the rows (every k-th) gives the start and, through its Hessian, the
curvature of quasi-Newton steps on all rows, where every evaluation is costly (about 7 at a
million customers).
"""

import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import minimize

from engagement_box.value.fitting import (
    FitResult,
    ModelFitError,
    _data_summary,
    _failed,
    _grouped_input,
    check_param_range,
    one_blas_thread,
)
from engagement_box.value.grouping import unique_rows

# Parameters measured in time (scaled with the data's time unit).
TIME_SCALE_PARAMS = frozenset({"alpha", "beta"})
_WARM_ROWS = 4_000
# Largest |gradient| of the mean objective accepted when BFGS stops on precision loss.
_GRADIENT_TOL = 1e-4

Objective = Callable[[np.ndarray], Any]


@one_blas_thread()
def fit_log_params(
    model: str,
    names: tuple[str, ...],
    make_objective: Callable[..., Objective],
    x: Any,
    t_x: Any,
    T: Any,
    *,
    time_unit: str,
    raise_on_failure: bool,
    check_input: Callable[..., tuple[str, str] | None],
    counts: Any = None,
) -> FitResult:
    """Fit `model` on per-customer (x, t_x, T), or on grouped rows that stand for `counts[i]`
    customers each; `make_objective(x, t_x, T, w)` returns the mean negative log-likelihood of
    log parameters with its gradient."""
    started = time.perf_counter()
    x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
    if not (x.shape == t_x.shape == T.shape):
        raise ValueError("x, t_x and T must have the same length")
    (x, t_x, T), given = _grouped_input((x, t_x, T), counts, True)
    n = int(x.shape[0]) if given is None else int(given.sum())
    summary = {"n_customers": n, **_data_summary(given, x=x, t_x=t_x, T=T)}

    def fail(err: ModelFitError, rows: int = 0) -> FitResult:
        seconds = time.perf_counter() - started
        return _failed(model, err, raise_on_failure, n, rows, seconds, time_unit, 0.0)

    problem = check_input(x, t_x, T, n)
    if problem:
        return fail(ModelFitError(model, *problem, summary))
    if given is not None:
        gx, gt, gT, counts = x, t_x, T, given
    else:
        (gx, gt, gT), _, counts = unique_rows(x, t_x, T, return_inverse=False)
    w = counts.astype(float)
    rows = int(gx.shape[0])
    scale = float(gT.max())
    shift = np.array([math.log(scale) if k in TIME_SCALE_PARAMS else 0.0 for k in names])
    try:
        step = max(1, rows // _WARM_ROWS)
        sub = slice(0, None, step)
        warm = make_objective(gx[sub], gt[sub] / scale, gT[sub] / scale, w[sub])
        begin = _subsample_fit(warm, np.zeros(len(names)))
        full = make_objective(gx, gt / scale, gT / scale, w)
        log_params, mean_nll = _newton_polish(
            model, full, begin, gradient_hessian(warm, begin), summary
        )
        params = {k: float(v) for k, v in zip(names, np.exp(log_params + shift), strict=True)}
        check_param_range(model, params, summary)
    except ModelFitError as err:
        return fail(err, rows)
    return FitResult(
        model=model,  # type: ignore[arg-type]
        params=params,
        # The objective's value at the optimum, back in the data's time unit: dividing times by
        # `scale` multiplies each customer's likelihood by scale^x (x purchase-time densities).
        log_likelihood=float(-mean_nll * w.sum() - math.log(scale) * (w @ gx)),
        n_customers=n,
        n_rows=rows,
        fit_seconds=time.perf_counter() - started,
        converged=True,
        message="converged",
        time_unit=time_unit,
    )


def _subsample_fit(nll: Objective, start: np.ndarray) -> np.ndarray:
    """BFGS on the subsample's objective; where it stops is only a start, so any finite point
    will do (the polish on all rows decides convergence). A gradient below 1e-3 is close
    enough: a tighter one cost Pareto/NBD 13 more subsample evaluations and saved no evaluation
    on all rows (1M customers)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = minimize(nll, start, jac=True, method="BFGS", options={"gtol": 1e-3})
    if np.all(np.isfinite(result.x)) and np.isfinite(result.fun):
        return np.asarray(result.x)
    return np.asarray(start, dtype=float)


def _newton_polish(
    model: str, value_and_gradient: Objective, start: np.ndarray, H: np.ndarray, summary: dict
) -> tuple[np.ndarray, float]:
    """Quasi-Newton steps on an objective returning (value, gradient), starting from the Hessian
    `H` of the subsample's mean objective (close to the full one) and refining it with BFGS
    updates; each step is halved until it descends. Stops when the next step is below 1e-6 in
    every log parameter (far below any standard error). Returns (log parameters, value)."""
    lp = np.asarray(start, dtype=float)
    f, g = value_and_gradient(lp)
    try:
        H_inv = np.linalg.inv(H)
    except np.linalg.LinAlgError as exc:
        raise ModelFitError(model, "not_converged", "flat likelihood at the start", summary) from (
            exc
        )
    if not np.isfinite(f):
        raise ModelFitError(
            model, "not_converged", "the likelihood is not finite at the start", summary
        )
    for _ in range(30):
        step = -H_inv @ g
        if float(np.max(np.abs(step))) < 1e-6:
            return lp, f
        t = 1.0
        while t > 1e-4:
            new = lp + t * step
            fn, g_new = value_and_gradient(new)
            # a finite gradient too: a point where it is not (a tiny month's Pareto/NBD) made
            # the BFGS update NaN and printed numpy's RuntimeWarning among the CLI's lines
            if np.isfinite(fn) and fn <= f and np.all(np.isfinite(g_new)):
                break
            t /= 2
        else:
            break
        dx, dg = new - lp, g_new - g
        curv = float(dx @ dg)
        if curv > 1e-300:  # BFGS update of the inverse Hessian
            rho = 1.0 / curv
            V = np.eye(dx.shape[0]) - rho * np.outer(dx, dg)
            H_inv = V @ H_inv @ V.T + rho * np.outer(dx, dx)
        lp, f, g = new, fn, g_new
    if float(np.max(np.abs(g))) < _GRADIENT_TOL:
        return lp, f
    raise ModelFitError(model, "not_converged", "Newton steps did not converge", summary)


def gradient_hessian(value_and_gradient: Objective, lp: np.ndarray, h: float = 1e-4):
    """Hessian by central differences of an analytic gradient (symmetrised)."""
    lp = np.asarray(lp, dtype=float)
    n = lp.shape[0]
    H = np.empty((n, n))
    for i in range(n):
        e = np.zeros(n)
        e[i] = h
        H[:, i] = (value_and_gradient(lp + e)[1] - value_and_gradient(lp - e)[1]) / (2 * h)
    return (H + H.T) / 2
