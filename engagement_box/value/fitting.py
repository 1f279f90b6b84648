"""BG/NBD and Gamma-Gamma fits on grouped sufficient statistics, with typed failures.

Plain maths, no Dagster import (formulas: Fader, Hardie & Lee 2005; Fader & Hardie's Gamma-Gamma
note; docs/METRICS.md):

* Fits use lifetimes' `BetaGeoFitter` / `GammaGammaFitter` on *grouped* sufficient statistics: the
  distinct (x, t_x, T) rows (resp. (x, m)) with their counts as `weights`. The objective is the same
  weighted likelihood, so the parameters equal the ungrouped fit, only much faster. The warm start
  and the final polish use the closed-form gradients of `engagement_box.value.likelihood`;
  lifetimes' fitter itself runs only where its BFGS would move from the polished point (normally
  it would not, and the fit takes that point as lifetimes would return it).
* Time unit: every time argument (t_x, T) is in the model's unit, days ("D") or weeks ("W" = days
  / 7); summaries are in days (`engagement_box.value.summary.to_time_unit` converts). Do not use
  lifetimes' `freq='W'` summaries (calendar weeks).
* Failures are typed: `ModelFitError` (with a `reason` code and a data summary) for degenerate
  input or non-convergence. A fit never returns NaN parameters.
"""

import contextlib
import functools
import io
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.special import gammaln

from engagement_box.value.grouping import merge_rows, unique_rows
from engagement_box.value.likelihood import _bgnbd_objective, _gamma_gamma_objective, _newton
from engagement_box.value.summary import TimeUnit, _check_unit

BGNBD_PARAMS = ("r", "alpha", "a", "b")
GAMMA_GAMMA_PARAMS = ("p", "q", "v")
# A fitted parameter outside this range is an optimiser running off to a boundary (e.g. b -> inf
# when nobody drops out), not an estimate.
_PARAM_RANGE = (1e-8, 1e8)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS (OpenBLAS, used by numpy's `@` on long vectors) on one thread inside the block; also
    a decorator (`@one_blas_thread()`).

    The fits' dot products over every row are memory-bound: a second BLAS thread hardly speeds
    them up, and OpenBLAS's threads spin while they wait, which is counted as CPU. On the 1M
    inputs model_fit's computation took 4.1-4.7 CPU-s with the default two threads and 2.5 with
    one, in less wall time. One thread also makes the sums' rounding independent of the host's
    core count."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


class ModelFitError(ValueError):
    """A model could not be fitted: degenerate or invalid data, or the optimiser did not converge.

    `reason` is one of "invalid_input", "degenerate", "not_converged", "boundary"; `summary` holds a
    few statistics of the data, to put into a failed asset check.
    """

    def __init__(
        self, model: str, reason: str, message: str, summary: dict[str, Any] | None = None
    ):
        self.model = model
        self.reason = reason
        self.summary = summary or {}
        super().__init__(f"{model}: {message} (reason={reason}, data={self.summary})")
        self.message = message


@dataclass(frozen=True)
class FitResult:
    """Outcome of one model fit.

    `params` maps names to floats (BG/NBD: r, alpha, a, b with alpha in the model's time unit;
    Gamma-Gamma: p, q, v where v is the paper's gamma). `log_likelihood` is the total (not mean)
    log-likelihood over customers, in the data's units. When a fit fails and the caller asked not to
    raise, `converged` is False, `params` is empty and `message` says why.
    """

    model: Literal["bgnbd", "gamma_gamma", "mbgnbd", "pareto_nbd"]
    params: dict[str, float]
    log_likelihood: float | None
    n_customers: int
    n_rows: int
    fit_seconds: float
    converged: bool
    message: str = ""
    time_unit: str | None = None
    penalizer: float = 0.0
    standard_errors: dict[str, float] = field(default_factory=dict)
    reason: str | None = None

    def as_metadata(self) -> dict[str, Any]:
        """Plain JSON-able dict for asset metadata."""
        return {
            "model": self.model,
            "params": dict(self.params),
            "standard_errors": dict(self.standard_errors),
            "log_likelihood": self.log_likelihood,
            "n_customers": self.n_customers,
            "n_rows": self.n_rows,
            "fit_seconds": round(self.fit_seconds, 4),
            "converged": self.converged,
            "message": self.message,
            "reason": self.reason,
            "time_unit": self.time_unit,
            "penalizer": self.penalizer,
        }


def _data_summary(weights: np.ndarray | None = None, **arrays: np.ndarray) -> dict[str, Any]:
    """Mean and max of each array; with `weights`, of grouped rows (the mean over customers)."""
    out: dict[str, Any] = {}
    for name, arr in arrays.items():
        if arr.size:
            if weights is None:
                mean = float(np.nanmean(arr))
            else:
                ok = ~np.isnan(arr)
                mean = float(np.average(arr[ok], weights=weights[ok])) if ok.any() else math.nan
            out[f"{name}_mean"] = round(mean, 6)
            out[f"{name}_max"] = round(float(np.nanmax(arr)), 6)
    return out


def _grouped_input(
    columns: tuple[np.ndarray, ...], counts: Any, grouped: bool
) -> tuple[tuple[np.ndarray, ...], np.ndarray | None]:
    """(columns, counts) of a fit's input: the rows as given with counts None (one row per
    customer), or rows that stand for `counts` customers each, merged and sorted as
    `unique_rows` sorts them, so the fit sees exactly the rows a per-customer call would."""
    if counts is None:
        return columns, None
    if not grouped:
        raise ValueError("counts are for grouped rows: grouped=False takes one row per customer")
    merged, weights = merge_rows(*columns, counts=counts)
    return tuple(merged), weights


def _failed(
    model: str,
    err: ModelFitError,
    raise_on_failure: bool,
    n_customers: int,
    n_rows: int,
    seconds: float,
    time_unit: str | None,
    penalizer: float,
) -> FitResult:
    if raise_on_failure:
        raise err
    return FitResult(
        model=model,  # type: ignore[arg-type]
        params={},
        log_likelihood=None,
        n_customers=n_customers,
        n_rows=n_rows,
        fit_seconds=seconds,
        converged=False,
        message=str(err),
        time_unit=time_unit,
        penalizer=penalizer,
        reason=err.reason,
    )


def _run_fitter(model: str, fitter: Any, summary: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    """Call `fitter.fit`, turning lifetimes' failures (it prints the scipy result) into ours."""
    from lifetimes.utils import ConvergenceError

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitter.fit(*args, **kwargs)
    except ConvergenceError as exc:
        detail = " ".join(out.getvalue().split())[:500]
        raise ModelFitError(
            model, "not_converged", f"optimiser did not converge: {detail or exc}", summary
        ) from exc
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        raise ModelFitError(model, "not_converged", f"fit failed: {exc}", summary) from exc
    return fitter


def _checked_params(model: str, fitter: Any, names: tuple[str, ...], summary: dict) -> dict:
    params = {k: float(fitter.params_[k]) for k in names}
    check_param_range(model, params, summary)
    return params


def check_param_range(model: str, params: dict[str, float], summary: dict) -> None:
    """A fit's parameters must be finite and inside _PARAM_RANGE (else a typed ModelFitError)."""
    bad = {k: v for k, v in params.items() if not math.isfinite(v)}
    if bad:
        raise ModelFitError(model, "not_converged", f"non-finite parameters {bad}", summary)
    lo, hi = _PARAM_RANGE
    out = {k: v for k, v in params.items() if not lo <= v <= hi}
    if out:
        raise ModelFitError(
            model,
            "boundary",
            f"parameters ran to a boundary {out}; the model is not identified on this data",
            summary,
        )


# Fast exact fits. The parameters still come from lifetimes' fitters (their objective
# `_negative_log_likelihood`, their scipy BFGS call), but
#   1. lifetimes' `BaseFitter._fit` always ends with an autograd Hessian for the standard errors,
#      which costs more than the fit on large data (polygamma on every row); `_fitter_class` is
#      the same fitter without it;
#   2. the optimiser starts close to the optimum: a fit on a deterministic subsample of the
#      grouped rows (every k-th row, with its count; scipy's BFGS from lifetimes' start, with the
#      closed-form gradient instead of an autograd trace, lifetimes' own fitter if that fails),
#      polished by Newton steps on all rows of the exact same objective written with the terms
#      that depend on x only summed per distinct x (`_bgnbd_objective`,
#      `_gamma_gamma_objective`); lifetimes' fitter then refines from there on all grouped rows
#      (normally it just confirms convergence) with the exact inverse Hessian as its starting
#      BFGS matrix; when the closed-form gradient at the polished point is already below half
#      its tolerance, its BFGS would stop before a step and return that point, so the fit takes
#      it without running lifetimes (`_confirmed`; lifetimes and autograd are then not even
#      imported);
#   3. standard errors use lifetimes' formula with the exact Hessian of that regrouped objective.
# If any shortcut fails, the fit falls back to lifetimes' default start.

_WARM_START_ROWS = 20_000
# Floating point resolves the optimum only to about 1e-13 in the log parameters, and where in
# that ball Newton stops depends on where it started (an earlier version's parameters, or a
# subsample's fit). The intervals' covariance (the inverse Hessian, ill-conditioned on a small
# retailer) magnified such a difference 10,000-fold: an incremental run's clv_p10 differed from
# a cold run's by 1.9e-9. So Newton polishes once more from its optimum rounded to this grid
# (2**-24, 6e-8, in log parameters): one data set gets the same parameters to the bit whichever
# start its fit had, unless the two optima straddle a grid line (odds about 1e-13 / 6e-8).
_CANONICAL_GRID = 2.0**24
# Largest |gradient| of lifetimes' mean objective accepted when BFGS stops on precision loss.
_PRECISION_LOSS_GRADIENT = 1e-5


@functools.cache
def _fitter_class(model: str) -> type:
    from autograd import value_and_grad
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import ConvergenceError
    from scipy.optimize import minimize

    base = {"bgnbd": BetaGeoFitter, "gamma_gamma": GammaGammaFitter}[model]

    class Fitter(base):  # type: ignore[misc, valid-type]
        """lifetimes' fitter; `_fit` is lifetimes' `BaseFitter._fit` without the Hessian."""

        def _fit(
            self,
            minimizing_function_args: Any,
            initial_params: Any,
            params_size: int,
            disp: bool,
            tol: float = 1e-7,
            bounds: Any = None,
            **kwargs: Any,
        ) -> Any:
            options = {"disp": disp, **kwargs}
            x0 = 0.1 * np.ones(params_size) if initial_params is None else initial_params
            output = minimize(
                value_and_grad(self._negative_log_likelihood),
                jac=True,
                method=None,
                tol=tol,
                x0=x0,
                args=minimizing_function_args,
                options=options,
                bounds=bounds,
            )
            self.optimizer_result_ = output
            # BFGS reports "precision loss" (status 2) when it cannot improve the objective in
            # floating point any more; with a vanishing gradient that is the optimum, not a
            # failure (lifetimes issues #419, #262). Anything else still fails the fit.
            precision_loss_at_optimum = (
                output.status == 2
                and np.all(np.isfinite(output.x))
                and float(np.max(np.abs(output.jac))) < _PRECISION_LOSS_GRADIENT
            )
            if output.success or precision_loss_at_optimum:
                return output.x, output.fun, None
            raise ConvergenceError(
                f"The model did not converge: {output.message} (after {output.nit} "
                "iterations). Check the summary for customers with extreme values; a penalizer "
                "would converge but biases the estimates."
            )

        def _compute_variance_matrix(self) -> None:
            return None

        def _compute_standard_errors(self) -> None:
            return None

        def _compute_confidence_intervals(self) -> None:
            return None

    Fitter.__name__ = Fitter.__qualname__ = base.__name__
    return Fitter


def _warm_start(
    sub_nll: Any,
    n_params: int,
    fit_kwargs: dict[str, Any],
    lifetimes_warm: Callable[[], Any],
) -> np.ndarray:
    """Log parameters fitted on a subsample: scipy's BFGS from lifetimes' default start with the
    closed-form gradient and the fit's tolerance and options; lifetimes' own fit of the subsample
    (`lifetimes_warm`) if that fails."""
    from scipy.optimize import minimize

    def value_grad(lp: np.ndarray) -> tuple[float, np.ndarray]:
        f, g, _ = sub_nll.derivatives(lp, False)
        return f, g

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = minimize(
            value_grad,
            0.1 * np.ones(n_params),
            jac=True,
            method="BFGS",
            tol=fit_kwargs["tol"],
            options=fit_kwargs["options"],
        )
    if np.all(np.isfinite(result.x)) and float(np.max(np.abs(result.jac))) < 1e-4:
        return np.asarray(result.x)
    return lifetimes_warm()


def _fast_fit(
    model: str,
    summary: dict[str, Any],
    data: tuple[np.ndarray, ...],
    weights: np.ndarray,
    nll: Any,
    to_log_params: Any,
    fit_kwargs: dict[str, Any],
    sub_objective: Callable[[slice], Any],
    n_params: int,
    start_lp: np.ndarray | None = None,
    from_log_params: Callable[[np.ndarray], dict[str, float]] | None = None,
) -> tuple[Any, np.ndarray | None]:
    """Warm start on a subsample, Newton polish, lifetimes refine; (fitter, exact Hessian).

    `sub_objective(rows)` builds the objective of a subsample of the grouped rows, in the same
    (scaled) units as `nll`. `start_lp`: log parameters to polish from instead of the subsample
    fit (an earlier fit of similar data); when the polish fails from there, the fit starts
    over from the subsample. `from_log_params`: the parameters lifetimes' fitter reports for
    its optimiser's log parameters (see `_confirmed`). lifetimes (`_fitter_class`) is imported
    only when it runs: with the scipy.stats it imports, 0.25 CPU-s in a run (0.5-0.7 in a bare
    process)."""
    rows = weights.shape[0]
    step = max(1, rows // _WARM_START_ROWS)
    sub = slice(0, None, step)

    def lifetimes_fit(part: slice) -> Any:
        """lifetimes' own fitter on the grouped rows `part`, from its default start."""
        return _run_fitter(
            model,
            _fitter_class(model)(penalizer_coef=fit_kwargs["penalizer"]),
            summary,
            *(d[part] for d in data),
            weights=weights[part],
            tol=fit_kwargs["tol"],
            **fit_kwargs["options"],
        )

    def lifetimes_warm() -> np.ndarray:
        return to_log_params(lifetimes_fit(sub).params_)

    def polished(lp: np.ndarray) -> tuple[Any, np.ndarray]:
        """Newton on all rows from `lp`, then lifetimes' refinement from there (skipped when
        its BFGS would stop at once, see `_confirmed`)."""
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start, _ = _newton(nll, lp)
            start, H = _newton(nll, np.round(start * _CANONICAL_GRID) / _CANONICAL_GRID)
            done = _confirmed(nll, start, fit_kwargs, from_log_params)
        if done is not None:
            return done, H
        fitter = _refined(model, _fitter_class(model), summary, data, weights, fit_kwargs, start, H)
        return fitter, H

    failures = (ModelFitError, np.linalg.LinAlgError, ValueError, FloatingPointError)
    if start_lp is not None and np.all(np.isfinite(start_lp)):
        try:
            return polished(np.asarray(start_lp, dtype=float))
        except failures:
            pass  # start over from the subsample fit
    try:
        return polished(_warm_start(sub_objective(sub), n_params, fit_kwargs, lifetimes_warm))
    except failures:
        return lifetimes_fit(slice(None)), None


@dataclass(frozen=True)
class _Confirmed:
    """What the fit reads of lifetimes' fitter (`params_`) when its refinement is skipped."""

    params_: dict[str, float]


def _confirmed(
    nll: Any,
    start: np.ndarray,
    fit_kwargs: dict[str, Any],
    from_log_params: Callable[[np.ndarray], dict[str, float]] | None,
) -> _Confirmed | None:
    """The fit at the polished `start` without running lifetimes' fitter, when that fitter would
    return `start` unchanged: scipy's BFGS stops before its first step when the largest
    |gradient| at its start is at most gtol (= the fit's tol), and lifetimes then reports
    exp(start) (alpha divided by its time scale). The closed-form gradient is the same
    objective's as lifetimes' autograd one (to rounding, about 1e-16); half of tol keeps a
    margin. After Newton the gradient is about 1e-14 at 1M customers against a tol of 1e-7.
    None (run lifetimes' fitter) when the gradient is larger, when options for scipy are given
    or when `from_log_params` is None."""
    derivatives = getattr(nll, "derivatives", None)
    if from_log_params is None or derivatives is None or fit_kwargs["options"]:
        return None
    _, g, _ = derivatives(start, False)
    if not (np.all(np.isfinite(g)) and float(np.max(np.abs(g))) <= 0.5 * fit_kwargs["tol"]):
        return None
    return _Confirmed(from_log_params(np.asarray(start, dtype=float)))


def _refined(
    model: str,
    fitter_cls: type,
    summary: dict[str, Any],
    data: tuple[np.ndarray, ...],
    weights: np.ndarray,
    fit_kwargs: dict[str, Any],
    start: np.ndarray,
    H: np.ndarray,
) -> Any:
    """lifetimes' fitter on all grouped rows from the polished `start`, with the exact inverse
    Hessian `H` as its first BFGS matrix (normally it only confirms convergence)."""
    hess_inv0 = np.linalg.inv(H)
    hess_inv0 = (hess_inv0 + hess_inv0.T) / 2
    options = {"hess_inv0": hess_inv0, **fit_kwargs["options"]}
    return _run_fitter(
        model,
        fitter_cls(penalizer_coef=fit_kwargs["penalizer"]),
        summary,
        *data,
        weights=weights,
        tol=fit_kwargs["tol"],
        initial_params=start,
        **options,
    )


def _exact_standard_errors(
    nll: Any, log_params: np.ndarray, params: dict[str, float], wsum: float, H: Any = None
) -> dict[str, float]:
    """lifetimes' standard errors, params * sqrt(diag(inv(Hessian)) / n), with the exact Hessian."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if H is None:
                from autograd import hessian

                H = np.asarray(hessian(nll)(np.asarray(log_params, dtype=float)))
            var = np.diag(np.linalg.inv(H)) / wsum
    except Exception:  # noqa: BLE001 - the Hessian may be singular; SEs are optional
        return {}
    se = {
        k: float(abs(v) * math.sqrt(s)) if s >= 0 else math.nan
        for (k, v), s in zip(params.items(), var, strict=True)
    }
    return {k: v for k, v in se.items() if math.isfinite(v)}


def bgnbd_log_likelihood(
    params: Mapping[str, float] | FitResult, x: Any, t_x: Any, T: Any, weights: Any = None
) -> float:
    """Total BG/NBD log-likelihood (FHL 2005 eq. 6) of the data, in the data's time unit."""
    r, alpha, a, b = _params(params, BGNBD_PARAMS)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + t_x)
    a4 = np.where(x > 0, a4, -np.inf)
    return float(np.sum(w * (a1 + a2 + np.logaddexp(a3, a4))))


def gamma_gamma_log_likelihood(
    params: Mapping[str, float] | FitResult, x: Any, m: Any, weights: Any = None
) -> float:
    """Total Gamma-Gamma log-likelihood of the mean repeat spends m (x > 0, m > 0 only)."""
    x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    return float(np.sum(w * sum(_gamma_gamma_terms(params, x, m))))


def _gamma_gamma_terms(
    params: Mapping[str, float] | FitResult, x: np.ndarray, m: np.ndarray
) -> tuple[np.ndarray, ...]:
    """The terms of each customer's Gamma-Gamma log-likelihood, in the order the value adds
    them (`sum` of them is the value; x - y == x + (-y) in floating point)."""
    p, q, v = _params(params, GAMMA_GAMMA_PARAMS)
    return (
        gammaln(p * x + q),
        -gammaln(p * x),
        -gammaln(q),
        q * np.log(v),
        (p * x - 1) * np.log(m),
        (p * x) * np.log(x),
        -(p * x + q) * np.log(x * m + v),
    )


@one_blas_thread()
def fit_bgnbd(
    x: Any,
    t_x: Any,
    T: Any,
    *,
    time_unit: TimeUnit = "D",
    penalizer: float = 0.0,
    tol: float = 1e-7,
    initial_params: Any = None,
    grouped: bool = True,
    raise_on_failure: bool = True,
    options: Mapping[str, Any] | None = None,
    counts: Any = None,
    start: Mapping[str, float] | None = None,
) -> FitResult:
    """Fit BG/NBD on per-customer (x, t_x, T) arrays, all times in `time_unit`; or, with
    `counts`, on grouped rows that stand for `counts[i]` customers each (e.g. the distinct rows
    Spark counts), which gives the same fit as the per-customer arrays without building them.

    Fits lifetimes' `BetaGeoFitter` on the distinct (x, t_x, T) rows with their counts as weights
    (`grouped=False` fits one row per customer, for comparison); `options` go to
    `scipy.optimize.minimize` (e.g. {"maxiter": 500}). `start`: parameters of an earlier fit of
    similar data (the previous as-of's) to polish from instead of a fit on a subsample; Newton's
    steps go to the same optimum from either start, and a last polish from that optimum
    rounded to a grid (`_CANONICAL_GRID`) gives the same parameters to the bit. Raises
    `ModelFitError` for invalid input (NaN, negative, t_x > T, non-integer x, x = 0 with
    t_x > 0), degenerate data (fewer than two customers, every customer bought once, every
    T = 0) and non-convergence; with
    `raise_on_failure=False` returns a `FitResult` with `converged=False` instead.
    """
    _check_unit(time_unit)
    model = "bgnbd"
    started = time.perf_counter()
    x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
    if not (x.shape == t_x.shape == T.shape):
        raise ValueError("x, t_x and T must have the same length")
    (x, t_x, T), given = _grouped_input((x, t_x, T), counts, grouped)
    n = int(x.shape[0]) if given is None else int(given.sum())
    summary = {"n_customers": n, **_data_summary(given, x=x, t_x=t_x, T=T)}
    if n:
        summary["share_one_time_buyers"] = round(float(np.average(x == 0, weights=given)), 6)

    def fail(err: ModelFitError, rows: int = 0) -> FitResult:
        return _failed(
            model,
            err,
            raise_on_failure,
            n,
            rows,
            time.perf_counter() - started,
            time_unit,
            penalizer,
        )

    problem = _bgnbd_input_problem(x, t_x, T, n)
    if problem:
        return fail(ModelFitError(model, *problem, summary))

    if given is not None:
        gx, gt, gT, weights = x, t_x, T, given
    elif grouped:
        (gx, gt, gT), _, weights = unique_rows(x, t_x, T, return_inverse=False)
    else:
        gx, gt, gT, weights = x, t_x, T, np.ones(n, dtype=np.int64)
    rows = int(gx.shape[0])

    scale = 1.0 / float(gT.max())  # lifetimes' time scaling (`_scale_time`)
    nll = _bgnbd_objective(gx, gt * scale, gT * scale, weights, penalizer)

    def to_log_params(p: Any) -> np.ndarray:
        return np.log([p["r"], p["alpha"] * scale, p["a"], p["b"]])

    def from_log_params(lp: np.ndarray) -> dict[str, float]:
        """lifetimes' BetaGeoFitter.params_ from its optimiser's log parameters."""
        params = dict(zip(BGNBD_PARAMS, np.exp(lp), strict=True))
        params["alpha"] /= scale
        return params

    fit_kwargs = {"penalizer": penalizer, "tol": tol, "options": dict(options or {})}
    try:
        if initial_params is None:
            fitter, H = _fast_fit(
                model,
                summary,
                (gx, gt, gT),
                weights,
                nll,
                to_log_params,
                fit_kwargs,
                lambda rows: _bgnbd_objective(
                    gx[rows], gt[rows] * scale, gT[rows] * scale, weights[rows], penalizer
                ),
                len(BGNBD_PARAMS),
                _start_log_params(start, BGNBD_PARAMS, to_log_params),
                from_log_params,
            )
        else:
            fitter = _run_fitter(
                model,
                _fitter_class(model)(penalizer_coef=penalizer),
                summary,
                gx,
                gt,
                gT,
                weights=weights,
                tol=tol,
                initial_params=initial_params,
                **fit_kwargs["options"],
            )
            H = None
        params = _checked_params(model, fitter, BGNBD_PARAMS, summary)
    except ModelFitError as err:
        return fail(err, rows)
    ll = bgnbd_log_likelihood(params, gx, gt, gT, weights)
    return FitResult(
        model=model,
        params=params,
        log_likelihood=ll,
        n_customers=n,
        n_rows=rows,
        fit_seconds=time.perf_counter() - started,
        converged=True,
        message="converged",
        time_unit=time_unit,
        penalizer=penalizer,
        standard_errors=_exact_standard_errors(
            nll, to_log_params(params), params, float(weights.sum()), H
        ),
    )


def _bgnbd_input_problem(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, n: int | None = None
) -> tuple[str, str] | None:
    """What is wrong with the rows (x, t_x, T), standing for `n` customers (default: one each)."""
    n = x.shape[0] if n is None else n
    if n == 0:
        return "degenerate", "no customers"
    if not (np.isfinite(x).all() and np.isfinite(t_x).all() and np.isfinite(T).all()):
        return "invalid_input", "NaN or infinite values in x, t_x or T"
    if (x < 0).any() or (t_x < 0).any() or (T < 0).any():
        return "invalid_input", "negative x, t_x or T"
    if (x != np.round(x)).any():
        return "invalid_input", "x (repeat purchases) must be whole numbers"
    if (t_x > T).any():
        return "invalid_input", "t_x (recency) greater than T (age)"
    if (t_x[x == 0] != 0).any():
        return "invalid_input", "t_x > 0 for a customer with no repeat purchase"
    if n < 2:
        return "degenerate", "only one customer: the population parameters are not identified"
    if not (x > 0).any():
        return "degenerate", "every customer bought once (x = 0 for all): dropout is not identified"
    if not (T > 0).any():
        return "degenerate", "every customer is observed for zero time (T = 0)"
    return None


@one_blas_thread()
def fit_gamma_gamma(
    x: Any,
    m: Any,
    *,
    penalizer: float = 0.0,
    tol: float = 1e-7,
    initial_params: Any = None,
    grouped: bool = True,
    raise_on_failure: bool = True,
    options: Mapping[str, Any] | None = None,
    counts: Any = None,
    start: Mapping[str, float] | None = None,
) -> FitResult:
    """Fit Gamma-Gamma on per-customer repeat frequency x and mean repeat spend m; or, with
    `counts`, on grouped (x, m) rows that stand for `counts[i]` customers each.

    Only customers with x > 0 and m > 0 enter the fit (Gamma-Gamma rejects spend <= 0); the others
    are dropped here, so all customers can be passed. Fitted on distinct (x, m) rows with counts as
    weights; `start` as in `fit_bgnbd`, in the data's units; `initial_params` are lifetimes'
    log (p, q, v) in the data's units. The fit runs on m over its median (`_spend_scale`), so
    its outcome does not depend on the currency unit. Raises `ModelFitError` when fewer than two
    customers remain, when every remaining spend is identical, when the optimiser fails, when
    the likelihood is highest as p -> infinity (`_p_at_infinity`, reason "boundary"), or when
    q <= 1 (the population mean spend v*p/(q-1) is then undefined and E[M] would be negative).
    """
    model = "gamma_gamma"
    started = time.perf_counter()
    x, m = (np.asarray(v, dtype=float).ravel() for v in (x, m))
    if x.shape != m.shape:
        raise ValueError("x and m must have the same length")
    (x, m), given = _grouped_input((x, m), counts, grouped)
    finite = np.isfinite(x) & np.isfinite(m)
    keep = finite & (x > 0) & (m > 0)
    xs, ms = x[keep], m[keep]
    kept = None if given is None else given[keep]
    n = int(xs.shape[0]) if kept is None else int(kept.sum())
    summary = {
        "n_customers_given": int(x.shape[0]) if given is None else int(given.sum()),
        "n_repeat_buyers_positive_spend": n,
        **_data_summary(kept, x=xs, m=ms),
    }

    def fail(err: ModelFitError, rows: int = 0) -> FitResult:
        return _failed(
            model, err, raise_on_failure, n, rows, time.perf_counter() - started, None, penalizer
        )

    if not finite.all():
        return fail(ModelFitError(model, "invalid_input", "NaN or infinite x or m", summary))
    if (x != np.round(x)).any() or (x < 0).any():
        return fail(ModelFitError(model, "invalid_input", "x must be whole numbers >= 0", summary))
    if n < 2:
        return fail(
            ModelFitError(
                model,
                "degenerate",
                "fewer than two repeat buyers with positive spend "
                "(one-time buyers or zero spend only)",
                summary,
            )
        )
    if np.ptp(ms) == 0:
        return fail(
            ModelFitError(
                model, "degenerate", "every repeat buyer has the same mean spend", summary
            )
        )

    if kept is not None:
        gx, gm, weights = xs, ms, kept
    elif grouped:
        (gx, gm), _, weights = unique_rows(xs, ms, return_inverse=False)
    else:
        gx, gm, weights = xs, ms, np.ones(n, dtype=np.int64)
    rows = int(gx.shape[0])

    # The fit runs on the spends divided by their median (`_spend_scale`): the likelihood's
    # maximiser is scale-equivariant (spends times c: p and q the same, v times c), but BFGS's
    # steps and its precision-loss stop are not, so whether a fit converged depended on the
    # currency unit. A penalizer is lifetimes' L2 penalty on v in the data's units, which has no
    # unit-free equivalent: with one the fit keeps the data's units, as lifetimes fits.
    scale = 1.0 if penalizer else _spend_scale(gm, weights)
    sm = gm / scale
    nll = _gamma_gamma_objective(gx, sm, weights, penalizer)

    def to_log_params(p: Any) -> np.ndarray:
        """The fit's log parameters of parameters in the data's units."""
        return np.log([p["p"], p["q"], p["v"] / scale])

    def fitted_log_params(p: Any) -> np.ndarray:
        """The log parameters of lifetimes' fitter's `params_` (fitted on the scaled spends)."""
        return np.log([p["p"], p["q"], p["v"]])

    fit_kwargs = {"penalizer": penalizer, "tol": tol, "options": dict(options or {})}
    scaled: dict[str, float] | None = None
    failure: ModelFitError | None = None
    try:
        if initial_params is None:
            fitter, H = _fast_fit(
                model,
                summary,
                (gx, sm),
                weights,
                nll,
                fitted_log_params,
                fit_kwargs,
                lambda rows: _gamma_gamma_objective(gx[rows], sm[rows], weights[rows], penalizer),
                len(GAMMA_GAMMA_PARAMS),
                _start_log_params(start, GAMMA_GAMMA_PARAMS, to_log_params),
                lambda lp: dict(zip(GAMMA_GAMMA_PARAMS, np.exp(lp), strict=True)),
            )
        else:
            # lifetimes' log (p, q, v) in the data's units; v's moves to the scaled spends
            initial = np.asarray(initial_params, dtype=float) - [0.0, 0.0, math.log(scale)]
            fitter = _run_fitter(
                model,
                _fitter_class(model)(penalizer_coef=penalizer),
                summary,
                gx,
                sm,
                weights=weights,
                tol=tol,
                initial_params=initial,
                **fit_kwargs["options"],
            )
            H = None
        scaled = {k: float(fitter.params_[k]) for k in GAMMA_GAMMA_PARAMS}
        # the range in the scaled units: v's bounds in the data's units depend on the currency
        check_param_range(
            model, {"p": scaled["p"], "q": scaled["q"], f"v/{scale:.6g}": scaled["v"]}, summary
        )
    except ModelFitError as err:
        failure = err
    if not penalizer:
        # With a penalizer p cannot run off to infinity (the penalty grows with p).
        limit = _p_at_infinity(gx, sm, weights, scaled, scale, summary)
        if limit is not None:
            return fail(limit, rows)
    if failure is not None:
        return fail(failure, rows)
    assert scaled is not None
    params = {"p": scaled["p"], "q": scaled["q"], "v": scaled["v"] * scale}
    if params["q"] <= 1:
        return fail(
            ModelFitError(
                model,
                "boundary",
                f"q = {params['q']:.4g} <= 1: population mean spend undefined",
                summary,
            ),
            rows,
        )
    return FitResult(
        model=model,
        params=params,
        log_likelihood=gamma_gamma_log_likelihood(params, gx, gm, weights),
        n_customers=n,
        n_rows=rows,
        fit_seconds=time.perf_counter() - started,
        converged=True,
        message="converged",
        penalizer=penalizer,
        standard_errors=_exact_standard_errors(
            nll, to_log_params(params), params, float(weights.sum()), H
        ),
    )


def _spend_scale(m: np.ndarray, weights: np.ndarray) -> float:
    """The unit Gamma-Gamma is fitted in: the weighted median of the fitted customers' mean
    spends m (all > 0). The median, not the mean: the customers whose spends are far above the
    rest are the ones that make a fit hard, and one B2B buyer moved the mean of a small shop
    1,000-fold (to 43,542 against a median of 53), leaving a typical customer at 0.001; the
    median stays a typical customer's spend, so the scaled spends and v are near 1. Computed
    on the grouped rows, which the per-customer and grouped (Spark) calls share, so both get
    the same scale to the bit; a change of currency unit c gives c times the same median."""
    order = np.argsort(m, kind="stable")
    cum = np.cumsum(np.asarray(weights, dtype=float)[order])
    return float(m[order][np.searchsorted(cum, 0.5 * cum[-1])])


# How a Gamma-Gamma failure at p -> infinity begins; its message gives its own advice.
P_AT_INFINITY = "the likelihood rises as p -> infinity"
# A p -> infinity failure whose largest mean repeat spend is under this many times the median
# is said as spends too alike, not as outliers.
OUTLIER_TIMES_MEDIAN = 3.0


def _p_at_infinity(
    x: np.ndarray,
    m: np.ndarray,
    w: np.ndarray,
    fitted: dict[str, float] | None,
    scale: float,
    summary: dict[str, Any],
) -> ModelFitError | None:
    """A `boundary` failure when Gamma-Gamma's likelihood is highest as p -> infinity, else None.

    As p -> inf with p v = s fixed, a customer's spends no longer vary around their own mean and
    the mean spends m are inverse-gamma(q, s) whatever x: log L -> log L_inf. Near that limit
    log L = log L_inf + A / p + O(1/p^2), with (at the limit's own maximum, y = 1/m)
        A = sum_i w_i / (2 x_i) ((s y_i - q)^2 - q),
    the spread of s y against its model variance q. A < 0: the likelihood still rises towards
    p = inf, and the optimiser either fails (BFGS loses precision on the flat ridge) or stops
    wherever its gradient falls below tol (p ~ 1e6, a point that depended on the currency
    unit). Such a fit (or failure) is this boundary unless a fitted interior point beats the
    limit by more than its rounding. `m` are the scaled spends; everything here is unit-free."""
    y = 1.0 / m
    wsum = float(w.sum())
    y_mean = float(w @ y) / wsum
    d = math.log(y_mean) - float(w @ np.log(y)) / wsum  # > 0 unless all m are equal
    if not (math.isfinite(d) and d > 0):
        return None
    q = _gamma_shape(d)
    s = q / y_mean
    sy = s * y
    slope = float(w @ (((sy - q) ** 2 - q) / (2.0 * x)))
    if not math.isfinite(slope) or slope >= 0:
        return None
    ll_inf = float(w @ (q * math.log(s) - gammaln(q) - (q + 1) * np.log(m) - sy))
    if fitted is not None:
        terms = _gamma_gamma_terms(fitted, x, m)
        ll_fit = float(w @ sum(terms))
        rounding = 64 * np.finfo(float).eps * float(w @ sum(np.abs(t) for t in terms))
        if ll_fit > ll_inf + rounding:
            return None  # an interior maximum above the limit
    # The customers' median spend is the fit's unit (`_spend_scale`, weighted by customers, so
    # the grouped rows of the Spark engine say the same figure as the per-customer ones).
    median = scale
    top = float(np.max(m)) * scale
    said = {
        **summary,
        "m_median": float(f"{median:.10g}"),
        "m_max_over_median": float(f"{top / median:.10g}"),
        "limit_q": float(f"{q:.10g}"),
        "limit_p_times_v": float(f"{s * scale:.10g}"),
    }
    limit = (
        f"{P_AT_INFINITY} (no spread of a customer's order values around "
        f"their own mean; the limit has q = {q:.4g}, p*v = {s * scale:.6g}): "
    )
    penalizer = "ENGAGEMENT_PENALIZER (e.g. 0.001, which keeps p finite but biases every estimate)"
    if top / median < OUTLIER_TIMES_MEDIAN:
        # No customer far above the rest: the advice about outliers sent a user looking for
        # one (a month early in the sample's orders: 5 repeat buyers within 1.3 times the
        # median, said as "a few customers far above the rest").
        buyers = summary.get("n_repeat_buyers_positive_spend")
        return ModelFitError(
            "gamma_gamma",
            "boundary",
            f"{limit}the mean repeat spends "
            + (f"of the {buyers:,} repeat buyers " if buyers else "")
            + f"lie within {top / median:.1f} times their median {median:,.2f}, too alike "
            "for the model to tell how one customer's spends vary from how customers differ. "
            "A later as-of, with more repeat purchases, usually fits; or set "
            f"{penalizer}, then run again",
            said,
        )
    return ModelFitError(
        "gamma_gamma",
        "boundary",
        f"{limit}the mean spends are "
        f"spread far more widely than the model allows, typically a few customers far above "
        f"the rest (the largest mean repeat spend is {top / median:,.0f} times the median "
        f"{median:,.2f}). Check those customers' orders (a wholesale or B2B account, a "
        f"currency without its rate, amounts in cents); exclude them from the exports, or set "
        f"{penalizer}, then run again",
        said,
    )


def _gamma_shape(d: float) -> float:
    """The shape q solving log q - digamma(q) = d (> 0): the gamma MLE's equation (Minka's
    start, then Newton steps; monotone, so a few steps reach rounding)."""
    from scipy.special import digamma, polygamma

    q = (3.0 - d + math.sqrt((d - 3.0) ** 2 + 24.0 * d)) / (12.0 * d)
    for _ in range(50):
        step = (math.log(q) - float(digamma(q)) - d) / (1.0 / q - float(polygamma(1, q)))
        new = q - step
        q = new if new > 0 else q / 2
        if abs(step) <= 1e-15 * q:
            break
    return q


def _start_log_params(
    start: Mapping[str, float] | None, names: tuple[str, ...], to_log_params: Callable
) -> np.ndarray | None:
    """The log parameters (in the fit's scaled units) of a `start`, or None when it has no
    usable value for every parameter."""
    if not start:
        return None
    try:
        values = {k: float(start[k]) for k in names}
    except (KeyError, TypeError, ValueError):
        return None
    if not all(math.isfinite(v) and v > 0 for v in values.values()):
        return None
    with np.errstate(all="ignore"):
        return np.asarray(to_log_params(values), dtype=float)


def _params(params: Mapping[str, float] | FitResult, names: tuple[str, ...]) -> list[float]:
    if isinstance(params, FitResult):
        if not params.converged:
            raise ModelFitError(
                params.model, params.reason or "not_converged", "cannot score with a failed fit"
            )
        params = params.params
    return [float(params[k]) for k in names]
