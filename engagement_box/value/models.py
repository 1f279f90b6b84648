"""Customer value models: BG/NBD purchases, Gamma-Gamma spend, CLV, holdout validation.

Plain maths, no Dagster import. The formulas are those of `../shared/METRICS.md` (Fader, Hardie &
Lee 2005; Fader & Hardie's Gamma-Gamma note):

* Fits use lifetimes' `BetaGeoFitter` / `GammaGammaFitter` on *grouped* sufficient statistics: the
  distinct (x, t_x, T) rows (resp. (x, m)) with their counts as `weights`. The objective is the same
  weighted likelihood, so the parameters equal the ungrouped fit, only much faster.
* Scoring (P(alive), conditional expected purchases, E[M], CLV) is vectorised numpy/scipy over the
  customer arrays, with the same formulas as lifetimes' methods (tested against them).
* Time unit: every time argument (t_x, T, the horizon t) is in the model's unit, days ("D") or weeks
  ("W" = days / 7). Summaries are always computed in days (`sql/marts/customer_summary.sql`); use
  `to_time_unit` to convert. Do not use lifetimes' `freq='W'` summaries (calendar weeks, see
  LIFETIMES.md).
* Failures are typed: `ModelFitError` (with a `reason` code and a data summary) for degenerate
  input or non-convergence. A fit never returns NaN parameters.
"""

import contextlib
import functools
import io
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy.special import digamma, expit, gammaln, hyp2f1, polygamma

from engagement_box.sql import load_sql
from engagement_box.staging.contracts import MAX_RATE

TimeUnit = Literal["D", "W"]
DAYS_PER_UNIT: dict[str, float] = {"D": 1.0, "W": 7.0}
BGNBD_PARAMS = ("r", "alpha", "a", "b")
GAMMA_GAMMA_PARAMS = ("p", "q", "v")
# A fitted parameter outside this range is an optimiser running off to a boundary (e.g. b -> inf
# when nobody drops out), not an estimate.
_PARAM_RANGE = (1e-8, 1e8)
FREQUENCY_BUCKETS = ("0", "1", "2", "3", "4", "5", "6", "7+")


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

    model: Literal["bgnbd", "gamma_gamma"]
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


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------


# The largest share of completed orders (up to the as-of date) that may be left out of the value
# models for want of an FX rate before work/customer_summary's blocking check fails.
MAX_ORDERS_LEFT_OUT_SHARE = 0.01


def fx_parameters(
    currency: str | None, fx_rates: Mapping[str, float] | None = None
) -> dict[str, list | None]:
    """SQL parameters converting amounts into `currency` (None: single-currency data, no
    conversion) at the setting's rates, the fallback of the dated `fx_rates` export. Orders in a
    currency with no rate are left out of the summaries. A rate must be a number above 0 and at
    most the contract's MAX_RATE (the cap the conversion is sized for)."""
    if currency is None:
        return {"fx_currencies": None, "fx_rates": None}
    rates = {}
    for key, value in (fx_rates or {}).items():
        try:
            rate = float(value)
        except (TypeError, ValueError):
            rate = math.nan
        if not 0 < rate <= MAX_RATE:
            raise ValueError(
                f"ENGAGEMENT_FX_RATES: the rate of {key} is {value!r}; a rate must be a number "
                f"above 0 and at most {MAX_RATE:,.0f}"
            )
        rates[str(key).upper()] = rate
    rates[currency.upper()] = 1.0
    return {"fx_currencies": list(rates), "fx_rates": list(rates.values())}


def prepare_currency(con: Any, currency: str | None) -> None:
    """Create this connection's currency macros and its table of dated rates (from the staged
    `fx_rates` export, if there is one) for the summaries (`create_currency_macros.sql`)."""
    con.execute(load_sql("marts/create_currency_macros"))
    if currency is None:
        return
    has_rates = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'staging' AND table_name = 'fx_rates'"
    ).fetchone()[0]
    if has_rates:
        con.execute(load_sql("marts/insert_reporting_rates"), {"currency": currency.upper()})


def orders_left_out(
    con: Any, as_of: Any, *, currency: str | None, fx_rates: Mapping[str, float] | None = None
) -> tuple[dict[str, int], int]:
    """Completed orders up to `as_of` left out of the value models for want of an FX rate, per
    currency, and all completed orders up to `as_of` (the share's base)."""
    prepare_currency(con, currency)
    fx = fx_parameters(currency, fx_rates)
    left_out = con.execute(
        load_sql("marts/orders_without_rate"),
        {"as_of": as_of, "fx_currencies": fx["fx_currencies"]},
    ).fetchall()
    completed = con.execute(load_sql("marts/completed_orders"), {"as_of": as_of}).fetchone()[0]
    return {str(c): int(n) for c, n in left_out}, int(completed)


def customer_summary(
    con: Any,
    as_of: Any,
    start: Any = None,
    *,
    currency: str | None = None,
    fx_rates: Mapping[str, float] | None = None,
) -> pl.DataFrame:
    """Run `sql/marts/customer_summary.sql` on a DuckDB connection; `as_of` is inclusive.

    With `currency`, spend is in that currency (other currencies converted by `fx_rates`, orders
    in currencies without a rate left out); a dated rate of the staged `fx_rates` export comes
    before the setting's rate."""
    prepare_currency(con, currency)
    sql = load_sql("marts/customer_summary")
    params = {"as_of": as_of, "start": start, **fx_parameters(currency, fx_rates)}
    return con.execute(sql, params).pl()


def calibration_holdout(
    con: Any,
    calibration_end: Any,
    as_of: Any,
    start: Any = None,
    *,
    currency: str | None = None,
    fx_rates: Mapping[str, float] | None = None,
) -> pl.DataFrame:
    """Run `sql/marts/calibration_holdout.sql`: calibration summary + holdout purchase counts."""
    prepare_currency(con, currency)
    sql = load_sql("marts/calibration_holdout")
    params = {
        "calibration_end": calibration_end,
        "as_of": as_of,
        "start": start,
        **fx_parameters(currency, fx_rates),
    }
    return con.execute(sql, params).pl()


def to_time_unit(days: Any, time_unit: TimeUnit) -> np.ndarray:
    """Convert a duration in days to the model's unit (weeks = days / 7)."""
    return np.asarray(days, dtype=float) / DAYS_PER_UNIT[_check_unit(time_unit)]


def _check_unit(time_unit: str) -> str:
    if time_unit not in DAYS_PER_UNIT:
        raise ValueError(f"time_unit must be one of {sorted(DAYS_PER_UNIT)}, got {time_unit!r}")
    return time_unit


def unique_rows(
    *columns: Any, return_inverse: bool = True
) -> tuple[list[np.ndarray], np.ndarray | None, np.ndarray]:
    """Distinct rows of equal-length 1-d arrays: (distinct columns, inverse index, counts).

    `distinct[k][inverse]` rebuilds column k. Rows come out in lexicographic order. Each column is
    turned into integer codes (directly for small whole numbers, else by sorting its values), the
    codes are combined into one int64 key, and the key is counted (small key space) or sorted.
    With `return_inverse=False` (a fit needs only the rows and their counts) the inverse is None
    and the key is sorted instead of arg-sorted.
    """
    cols = [np.asarray(c, dtype=float).ravel() for c in columns]
    n = cols[0].shape[0]
    if n == 0:
        return [c[:0] for c in cols], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    codes, sizes, values = [], [], []
    for c in cols:
        lo, hi = float(c.min()), float(c.max())
        if math.isfinite(lo) and math.isfinite(hi) and hi - lo < 1e7 and (c == np.round(c)).all():
            codes.append((c - lo).astype(np.int64))
            sizes.append(int(hi - lo) + 1)
            values.append(None)
        else:  # arbitrary floats: codes by value (NaN sorts last, one code)
            uniq, code = np.unique(c, return_inverse=True)
            codes.append(code.astype(np.int64).ravel())
            sizes.append(int(uniq.shape[0]))
            values.append(uniq)
    if math.prod(sizes) >= 2**62:
        return _unique_rows_lexsort(cols)
    key = codes[0]
    for code, size in zip(codes[1:], sizes[1:], strict=True):
        key = key * size + code
    space = math.prod(sizes)
    if space <= max(4 * n, 1 << 20):
        counts_all = np.bincount(key, minlength=space)
        present = np.flatnonzero(counts_all)
        inverse = None
        if return_inverse:
            group = np.zeros(space, dtype=np.int64)
            group[present] = np.arange(present.shape[0])
            inverse = group[key]
        counts = counts_all[present]
        ukey = present.astype(np.int64)
    elif return_inverse:
        ukey, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        inverse = inverse.ravel()
    else:
        ukey, counts = np.unique(key, return_counts=True)
        inverse = None
    out = []
    for c, size, uniq in zip(cols[::-1], sizes[::-1], values[::-1], strict=True):
        code = ukey % size
        ukey = ukey // size
        out.append(uniq[code] if uniq is not None else code + c.min())
    return out[::-1], inverse, counts


def _distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, index of each value in them) of a 1-d array: `np.unique` with
    `return_inverse`, counted instead of sorted for whole numbers in a small range (days)."""
    (distinct,), inverse, _ = unique_rows(values)
    assert inverse is not None
    return distinct, inverse


def _unique_rows_lexsort(cols: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    n = cols[0].shape[0]
    order = np.lexsort(cols[::-1])
    sorted_cols = [c[order] for c in cols]
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for c in sorted_cols:
        new[1:] |= c[1:] != c[:-1]
    group_of_sorted = np.cumsum(new) - 1
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = group_of_sorted
    counts = np.bincount(group_of_sorted)
    return [c[new] for c in sorted_cols], inverse, counts


# --------------------------------------------------------------------------------------------
# Fits
# --------------------------------------------------------------------------------------------


def _data_summary(**arrays: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, arr in arrays.items():
        if arr.size:
            out[f"{name}_mean"] = round(float(np.nanmean(arr)), 6)
            out[f"{name}_max"] = round(float(np.nanmax(arr)), 6)
    return out


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
    return params


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
#      BFGS matrix;
#   3. standard errors use lifetimes' formula with the exact Hessian of that regrouped objective.
# If any shortcut fails, the fit falls back to lifetimes' default start.

_WARM_START_ROWS = 20_000
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
            print(output)
            raise ConvergenceError(
                "The model did not converge. Try adding a larger penalizer to see if that helps "
                "convergence."
            )

        def _compute_variance_matrix(self) -> None:
            return None

        def _compute_standard_errors(self) -> None:
            return None

        def _compute_confidence_intervals(self) -> None:
            return None

    Fitter.__name__ = Fitter.__qualname__ = base.__name__
    return Fitter


def _bgnbd_objective(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray, penalizer: float
) -> Any:
    """lifetimes' BG/NBD `_negative_log_likelihood` (log parameters, lifetimes' scaled time) with
    the terms in x only summed per distinct x and the x = 0 rows reduced to their A_3 term."""
    import autograd.numpy as anp
    from autograd.scipy.special import gammaln as agammaln

    w = np.asarray(weights, dtype=float)
    wsum = float(w.sum())
    ux, inv = _distinct(x)
    wx = np.bincount(inv, weights=w)
    zero = x == 0
    T0, w0 = T[zero], w[zero]
    xp, tp, Tp, wp = x[~zero], t_x[~zero], T[~zero], w[~zero]

    def nll(log_params: Any) -> Any:
        params = anp.exp(log_params)
        r, alpha, a, b = params[0], params[1], params[2], params[3]
        by_x = anp.sum(wx * (agammaln(r + ux) + agammaln(b + ux) - agammaln(a + b + ux))) + wsum * (
            -agammaln(r) + r * anp.log(alpha) + agammaln(a + b) - agammaln(b)
        )
        no_repeat = -r * anp.sum(w0 * anp.log(alpha + T0))
        a3 = -(r + xp) * anp.log(alpha + Tp)
        a4 = anp.log(a) - anp.log(b + xp - 1) - (r + xp) * anp.log(alpha + tp)
        repeat = anp.sum(wp * anp.logaddexp(a3, a4))
        return -(by_x + no_repeat + repeat) / wsum + penalizer * anp.sum(params**2)

    # Closed-form value, gradient and Hessian of `nll` for the Newton polish. Terms in T or t_x
    # alone are summed per distinct value (logs per distinct T / t_x, gathered per row), terms in
    # x alone per distinct x; only the logaddexp mixture is evaluated per row.
    uT0, iT0 = _distinct(T0)
    w0T = np.bincount(iT0, weights=w0, minlength=uT0.shape[0])
    uTp, iTp = _distinct(Tp)
    utp, itp = _distinct(tp)
    uxp, ixp = _distinct(xp)
    wpT = np.bincount(iTp, weights=wp, minlength=uTp.shape[0])
    wpxT = np.bincount(iTp, weights=wp * xp, minlength=uTp.shape[0])
    n_x = uxp.shape[0]

    last: dict[str, Any] = {}  # first-order terms at the last point, reused by its Hessian

    def first_order(log_params: Any) -> dict[str, Any]:
        key = tuple(np.asarray(log_params, dtype=float).ravel())
        if last.get("key") == key:
            return last
        r, alpha, a, b = np.exp(np.asarray(key))
        ab = a + b
        log_alpha, log_a = math.log(alpha), math.log(a)
        log_T0 = np.log(alpha + uT0)
        log_Tu, log_tu = np.log(alpha + uTp), np.log(alpha + utp)
        inv_Tu, inv_tu = 1.0 / (alpha + uTp), 1.0 / (alpha + utp)
        inv_bx = 1.0 / (b + uxp - 1)  # per distinct repeat x
        rw_T = r * wpT + wpxT  # sum of w (r + x) per distinct T
        # d = A4 - A3 per row; mixture term log(e^A3 + e^A4) = A3 + log(1 + e^d)
        L = log_Tu[iTp]
        L -= log_tu[itp]
        rx = xp + r
        d = rx * L
        d += (log_a + np.log(inv_bx))[ixp]
        value = float(wx @ (gammaln(r + ux) + gammaln(b + ux) - gammaln(ab + ux))) + wsum * (
            -gammaln(r) + r * log_alpha + gammaln(ab) - gammaln(b)
        )
        value += -r * float(w0T @ log_T0) - float(rw_T @ log_Tu) + float(wp @ np.logaddexp(0.0, d))
        p4 = expit(d)  # weight of A4 in the mixture
        wp4 = wp * p4
        IT, It = inv_Tu[iTp], inv_tu[itp]
        dI = IT - It
        M = dI * rx  # dA4/dalpha - dA3/dalpha
        s4x = np.bincount(ixp, weights=wp4, minlength=n_x)
        sum_wp4 = float(s4x.sum())
        dg_abx = float(wx @ digamma(ab + ux))
        sum_w0_inv = float(w0T @ (1.0 / (alpha + uT0)))
        g = np.array(
            [
                float(wx @ digamma(r + ux))
                + wsum * (log_alpha - digamma(r))
                - float(w0T @ log_T0)
                - float(wpT @ log_Tu)
                + float(wp4 @ L),
                wsum * r / alpha - r * sum_w0_inv - float(rw_T @ inv_Tu) + float(wp4 @ M),
                -dg_abx + wsum * digamma(ab) + sum_wp4 / a,
                float(wx @ digamma(b + ux))
                - dg_abx
                + wsum * (digamma(ab) - digamma(b))
                - float(s4x @ inv_bx),
            ]
        )
        params = np.array([r, alpha, a, b])
        f = -value / wsum + penalizer * float(params @ params)
        grad_nat = -g / wsum + 2 * penalizer * params
        last.clear()
        last.update(locals())
        last["key"] = key
        return last

    def derivatives(log_params: Any, hessian: bool) -> tuple[float, np.ndarray, np.ndarray | None]:
        st = first_order(log_params)
        params, grad_nat = st["params"], st["grad_nat"]
        grad = grad_nat * params
        if not hessian:
            return st["f"], grad, None
        r, alpha, a, b, ab = st["r"], st["alpha"], st["a"], st["b"], st["ab"]
        wp4, p4, L, M, inv_bx, s4x = st["wp4"], st["p4"], st["L"], st["M"], st["inv_bx"], st["s4x"]
        sum_wp4, inv_Tu = st["sum_wp4"], st["inv_Tu"]
        # Mixture Hessian: p3 H3 + p4 H4 + p3 p4 (dA3 - dA4)(dA3 - dA4)^T with
        # dA3 - dA4 = (-L, -M, -1/a, 1/(b+x-1)).
        H = np.zeros((4, 4))
        tg_abx = float(wx @ polygamma(1, ab + ux))
        H[0, 0] = float(wx @ polygamma(1, r + ux)) - wsum * polygamma(1, r)
        H[0, 1] = wsum / alpha - st["sum_w0_inv"] - float(wpT @ inv_Tu) + float(wp4 @ st["dI"])
        # rx (1/(alpha+t)^2 - 1/(alpha+T)^2) = -M (1/(alpha+T) + 1/(alpha+t))
        dI2 = st["IT"] + st["It"]
        dI2 *= M
        H[1, 1] = (
            -wsum * r / alpha**2
            + r * float(w0T @ (1.0 / (alpha + uT0)) ** 2)
            + float(st["rw_T"] @ inv_Tu**2)
            - float(wp4 @ dI2)
        )
        H[2, 2] = -tg_abx + wsum * polygamma(1, ab) - sum_wp4 / a**2
        H[2, 3] = -tg_abx + wsum * polygamma(1, ab)
        H[3, 3] = (
            float(wx @ polygamma(1, b + ux))
            - tg_abx
            + wsum * (polygamma(1, ab) - polygamma(1, b))
            + float(s4x @ inv_bx**2)
        )
        c = wp4 * (1.0 - p4)
        cL, cM = c * L, c * M
        cx = np.bincount(ixp, weights=c, minlength=n_x)
        cLx = np.bincount(ixp, weights=cL, minlength=n_x)
        cMx = np.bincount(ixp, weights=cM, minlength=n_x)
        sc, scL, scM = float(cx.sum()), float(cLx.sum()), float(cMx.sum())
        outer = np.array(
            [
                [float(cL @ L), float(cL @ M), scL / a, -float(cLx @ inv_bx)],
                [0.0, float(cM @ M), scM / a, -float(cMx @ inv_bx)],
                [0.0, 0.0, sc / a**2, -float(cx @ inv_bx) / a],
                [0.0, 0.0, 0.0, float(cx @ inv_bx**2)],
            ]
        )
        H += outer
        H = np.triu(H) + np.triu(H, 1).T
        H_nat = -H / wsum + 2 * penalizer * np.eye(4)
        return st["f"], grad, H_nat * np.outer(params, params) + np.diag(grad_nat * params)

    nll.derivatives = derivatives  # type: ignore[attr-defined]
    return nll


def _gamma_gamma_objective(
    x: np.ndarray, m: np.ndarray, weights: np.ndarray, penalizer: float
) -> Any:
    """lifetimes' Gamma-Gamma `_negative_log_likelihood` (log parameters) with the terms in x only
    summed per distinct x and the log m terms as two precomputed sums."""
    import autograd.numpy as anp
    from autograd.scipy.special import gammaln as agammaln

    w = np.asarray(weights, dtype=float)
    wsum = float(w.sum())
    ux, inv = _distinct(x)
    wx = np.bincount(inv, weights=w)
    ux_log_ux = ux * np.log(ux)
    log_m = np.log(m)
    sum_x_log_m = float(np.sum(w * x * log_m))
    sum_log_m = float(np.sum(w * log_m))
    wxm = w * x

    def nll(log_params: Any) -> Any:
        params = anp.exp(log_params)
        p, q, v = params[0], params[1], params[2]
        by_x = anp.sum(wx * (agammaln(p * ux + q) - agammaln(p * ux) + p * ux_log_ux))
        const = wsum * (q * anp.log(v) - agammaln(q)) + p * sum_x_log_m - sum_log_m
        log_xm_v = anp.log(x * m + v)
        rows = p * anp.sum(wxm * log_xm_v) + q * anp.sum(w * log_xm_v)
        return -(by_x + const - rows) / wsum + penalizer * anp.sum(params**2)

    xm = x * m

    def derivatives(log_params: Any, hessian: bool) -> tuple[float, np.ndarray, np.ndarray | None]:
        # Closed form of nll's value, gradient and Hessian (see `_bgnbd_objective`).
        p, q, v = np.exp(np.asarray(log_params, dtype=float))
        pxq, px = p * ux + q, p * ux
        log_xm_v = np.log(xm + v)
        inv = 1.0 / (xm + v)
        s_wxm_log, s_w_log = float(wxm @ log_xm_v), float(w @ log_xm_v)
        s_wxm_inv, s_w_inv = float(wxm @ inv), float(w @ inv)
        value = (
            float(wx @ (gammaln(pxq) - gammaln(px) + p * ux_log_ux))
            + wsum * (q * math.log(v) - gammaln(q))
            + p * sum_x_log_m
            - sum_log_m
            - p * s_wxm_log
            - q * s_w_log
        )
        dg_pxq = digamma(pxq)
        g = np.array(
            [
                float(wx @ (ux * (dg_pxq - digamma(px)) + ux_log_ux)) + sum_x_log_m - s_wxm_log,
                float(wx @ dg_pxq) + wsum * (math.log(v) - digamma(q)) - s_w_log,
                wsum * q / v - p * s_wxm_inv - q * s_w_inv,
            ]
        )
        params = np.array([p, q, v])
        f = -value / wsum + penalizer * float(params @ params)
        grad_nat = -g / wsum + 2 * penalizer * params
        grad = grad_nat * params
        if not hessian:
            return f, grad, None
        tg_pxq = polygamma(1, pxq)
        H = np.empty((3, 3))
        H[0, 0] = float(wx @ (ux**2 * (tg_pxq - polygamma(1, px))))
        H[0, 1] = H[1, 0] = float(wx @ (ux * tg_pxq))
        H[0, 2] = H[2, 0] = -s_wxm_inv
        H[1, 1] = float(wx @ tg_pxq) - wsum * polygamma(1, q)
        H[1, 2] = H[2, 1] = wsum / v - s_w_inv
        inv2 = inv * inv
        H[2, 2] = -wsum * q / v**2 + p * float(wxm @ inv2) + q * float(w @ inv2)
        H_nat = -H / wsum + 2 * penalizer * np.eye(3)
        return f, grad, H_nat * np.outer(params, params) + np.diag(grad_nat * params)

    nll.derivatives = derivatives  # type: ignore[attr-defined]
    nll.cheap_hessian = True  # type: ignore[attr-defined]
    return nll


def _newton(nll: Any, start: np.ndarray, max_hessians: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Minimise `nll` from a close start; returns (optimum, exact Hessian at the optimum).

    Newton steps that keep the Hessian while it works (a gradient costs a fraction of a Hessian):
    with a start from a subsample fit each step gains about two digits. Step halving keeps every
    step downhill. Raises np.linalg.LinAlgError when the Hessian is not positive definite or no
    step decreases the objective.
    """
    derivatives = getattr(nll, "derivatives", None)
    if derivatives is not None:  # closed form: no autograd graph over the rows

        def value_grad(lp: np.ndarray) -> tuple[float, np.ndarray]:
            f, g, _ = derivatives(lp, False)
            return f, g

        def hess(lp: np.ndarray) -> np.ndarray:
            return derivatives(lp, True)[2]

    else:
        from autograd import hessian, value_and_grad

        value_grad, hess = value_and_grad(nll), hessian(nll)
    # A closed-form Hessian that costs about one gradient: refresh it after every step (full
    # Newton, quadratic convergence) instead of reusing it.
    fresh_hessian = bool(getattr(nll, "cheap_hessian", False))
    if fresh_hessian:
        max_hessians = max(max_hessians, 12)
    lp = np.asarray(start, dtype=float).copy()
    f, g = value_grad(lp)
    for _ in range(max_hessians):
        H = np.asarray(hess(lp))
        np.linalg.cholesky(H)  # LinAlgError unless positive definite
        H_inv = np.linalg.inv(H)
        previous = math.inf
        for _ in range(12):
            step = -H_inv @ g
            size = float(np.max(np.abs(step)))
            if size < 1e-11:  # converged: the objective no longer resolves the step
                return lp + step, np.asarray(hess(lp + step))
            if size > 0.25 * previous:  # slow: at rounding level we are done, else refresh H
                if size < 1e-8:
                    return lp, np.asarray(hess(lp))
                break
            previous = size
            t = 1.0
            while size > 1e-6:  # tiny steps are below what f resolves: take them as they are
                new = lp + t * step
                fn, gn = value_grad(new)
                if np.isfinite(fn) and fn <= f + 1e-4 * t * float(g @ step) + 1e-13 * abs(f):
                    break
                t /= 2
                if t < 1e-6:
                    raise np.linalg.LinAlgError("no Newton step decreases the objective")
            else:
                new = lp + step
                fn, gn = value_grad(new)
            lp, f, g = new, fn, gn
            if fresh_hessian:
                break
    raise np.linalg.LinAlgError("Newton did not converge")


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
    fitter_cls: type,
    summary: dict[str, Any],
    data: tuple[np.ndarray, ...],
    weights: np.ndarray,
    nll: Any,
    to_log_params: Any,
    fit_kwargs: dict[str, Any],
    sub_objective: Callable[[slice], Any],
    n_params: int,
) -> tuple[Any, np.ndarray | None]:
    """Warm start on a subsample, Newton polish, lifetimes refine; (fitter, exact Hessian).

    `sub_objective(rows)` builds the objective of a subsample of the grouped rows, in the same
    (scaled) units as `nll`."""
    rows = weights.shape[0]
    step = max(1, rows // _WARM_START_ROWS)
    sub = slice(0, None, step)

    def lifetimes_warm() -> np.ndarray:
        warm = _run_fitter(
            model,
            fitter_cls(penalizer_coef=fit_kwargs["penalizer"]),
            summary,
            *(d[sub] for d in data),
            weights=weights[sub],
            tol=fit_kwargs["tol"],
            **fit_kwargs["options"],
        )
        return to_log_params(warm.params_)

    try:
        warm_lp = _warm_start(sub_objective(sub), n_params, fit_kwargs, lifetimes_warm)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start, H = _newton(nll, warm_lp)
        hess_inv0 = np.linalg.inv(H)
        hess_inv0 = (hess_inv0 + hess_inv0.T) / 2
        options = {"hess_inv0": hess_inv0, **fit_kwargs["options"]}
        fitter = _run_fitter(
            model,
            fitter_cls(penalizer_coef=fit_kwargs["penalizer"]),
            summary,
            *data,
            weights=weights,
            tol=fit_kwargs["tol"],
            initial_params=start,
            **options,
        )
        return fitter, H
    except (ModelFitError, np.linalg.LinAlgError, ValueError, FloatingPointError):
        fitter = _run_fitter(
            model,
            fitter_cls(penalizer_coef=fit_kwargs["penalizer"]),
            summary,
            *data,
            weights=weights,
            tol=fit_kwargs["tol"],
            **fit_kwargs["options"],
        )
        return fitter, None


def _exact_standard_errors(
    nll: Any, log_params: np.ndarray, params: dict[str, float], wsum: float, H: Any = None
) -> dict[str, float]:
    """lifetimes' standard errors, params * sqrt(diag(inv(Hessian)) / n), with the exact Hessian."""
    from autograd import hessian

    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if H is None:
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
    p, q, v = _params(params, GAMMA_GAMMA_PARAMS)
    x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    ll = (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(v)
        + (p * x - 1) * np.log(m)
        + (p * x) * np.log(x)
        - (p * x + q) * np.log(x * m + v)
    )
    return float(np.sum(w * ll))


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
) -> FitResult:
    """Fit BG/NBD on per-customer (x, t_x, T) arrays, all times in `time_unit`.

    Fits lifetimes' `BetaGeoFitter` on the distinct (x, t_x, T) rows with their counts as weights
    (`grouped=False` fits one row per customer, for comparison); `options` go to
    `scipy.optimize.minimize` (e.g. {"maxiter": 500}). Raises `ModelFitError` for invalid
    input (NaN, negative, t_x > T, non-integer x, x = 0 with t_x > 0), degenerate data (fewer than
    two customers, every customer bought once, every T = 0) and non-convergence; with
    `raise_on_failure=False` returns a `FitResult` with `converged=False` instead.
    """
    _check_unit(time_unit)
    model = "bgnbd"
    started = time.perf_counter()
    x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
    n = int(x.shape[0])
    summary = {"n_customers": n, **_data_summary(x=x, t_x=t_x, T=T)}
    if n:
        summary["share_one_time_buyers"] = round(float(np.mean(x == 0)), 6)

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

    if not (x.shape == t_x.shape == T.shape):
        raise ValueError("x, t_x and T must have the same length")
    problem = _bgnbd_input_problem(x, t_x, T)
    if problem:
        return fail(ModelFitError(model, *problem, summary))

    if grouped:
        (gx, gt, gT), _, weights = unique_rows(x, t_x, T, return_inverse=False)
    else:
        gx, gt, gT, weights = x, t_x, T, np.ones(n, dtype=np.int64)
    rows = int(gx.shape[0])

    fitter_cls = _fitter_class(model)
    scale = 1.0 / float(gT.max())  # lifetimes' time scaling (`_scale_time`)
    nll = _bgnbd_objective(gx, gt * scale, gT * scale, weights, penalizer)

    def to_log_params(p: Any) -> np.ndarray:
        return np.log([p["r"], p["alpha"] * scale, p["a"], p["b"]])

    fit_kwargs = {"penalizer": penalizer, "tol": tol, "options": dict(options or {})}
    try:
        if initial_params is None:
            fitter, H = _fast_fit(
                model,
                fitter_cls,
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
            )
        else:
            fitter = _run_fitter(
                model,
                fitter_cls(penalizer_coef=penalizer),
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


def _bgnbd_input_problem(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[str, str] | None:
    n = x.shape[0]
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
) -> FitResult:
    """Fit Gamma-Gamma on per-customer repeat frequency x and mean repeat spend m.

    Only customers with x > 0 and m > 0 enter the fit (Gamma-Gamma rejects spend <= 0); the others
    are dropped here, so all customers can be passed. Fitted on distinct (x, m) rows with counts as
    weights. Raises `ModelFitError` when fewer than two customers remain, when every remaining spend
    is identical, when the optimiser fails, or when q <= 1 (the population mean spend
    v*p/(q-1) is then undefined and E[M] would be negative).
    """
    model = "gamma_gamma"
    started = time.perf_counter()
    x, m = (np.asarray(v, dtype=float).ravel() for v in (x, m))
    if x.shape != m.shape:
        raise ValueError("x and m must have the same length")
    finite = np.isfinite(x) & np.isfinite(m)
    keep = finite & (x > 0) & (m > 0)
    xs, ms = x[keep], m[keep]
    n = int(xs.shape[0])
    summary = {
        "n_customers_given": int(x.shape[0]),
        "n_repeat_buyers_positive_spend": n,
        **_data_summary(x=xs, m=ms),
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

    if grouped:
        (gx, gm), _, weights = unique_rows(xs, ms, return_inverse=False)
    else:
        gx, gm, weights = xs, ms, np.ones(n, dtype=np.int64)
    rows = int(gx.shape[0])

    fitter_cls = _fitter_class(model)
    nll = _gamma_gamma_objective(gx, gm, weights, penalizer)

    def to_log_params(p: Any) -> np.ndarray:
        return np.log([p["p"], p["q"], p["v"]])

    fit_kwargs = {"penalizer": penalizer, "tol": tol, "options": dict(options or {})}
    try:
        if initial_params is None:
            fitter, H = _fast_fit(
                model,
                fitter_cls,
                summary,
                (gx, gm),
                weights,
                nll,
                to_log_params,
                fit_kwargs,
                lambda rows: _gamma_gamma_objective(gx[rows], gm[rows], weights[rows], penalizer),
                len(GAMMA_GAMMA_PARAMS),
            )
        else:
            fitter = _run_fitter(
                model,
                fitter_cls(penalizer_coef=penalizer),
                summary,
                gx,
                gm,
                weights=weights,
                tol=tol,
                initial_params=initial_params,
                **fit_kwargs["options"],
            )
            H = None
        params = _checked_params(model, fitter, GAMMA_GAMMA_PARAMS, summary)
        if params["q"] <= 1:
            raise ModelFitError(
                model,
                "boundary",
                f"q = {params['q']:.4g} <= 1: population mean spend undefined",
                summary,
            )
    except ModelFitError as err:
        return fail(err, rows)
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


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def _params(params: Mapping[str, float] | FitResult, names: tuple[str, ...]) -> list[float]:
    if isinstance(params, FitResult):
        if not params.converged:
            raise ModelFitError(
                params.model, params.reason or "not_converged", "cannot score with a failed fit"
            )
        params = params.params
    return [float(params[k]) for k in names]


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
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ln_hyp = np.log(hyp2f1(_a, _b, _c, _z))
        inf = np.isinf(ln_hyp)
        if inf.any():
            alt = np.log(hyp2f1(_c - _a, _c - _b, _c, _z)) + (_c - _a - _b) * np.log1p(-_z)
            ln_hyp = np.where(inf, alt, ln_hyp)
    first = (a + b + x - 1) / (a - 1)
    second = 1 - np.exp(ln_hyp + (r + x) * np.log((alpha + T) / (alpha + t + T)))
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


def frequency_spend_correlation(x: Any, m: Any) -> SpendIndependence:
    """Pearson and Spearman correlation between x and m over customers with x > 0 and m > 0."""
    from scipy.stats import pearsonr, spearmanr

    x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
    keep = np.isfinite(x) & np.isfinite(m) & (x > 0) & (m > 0)
    xs, ms = x[keep], m[keep]
    n = int(keep.sum())
    if n < 3 or np.ptp(xs) == 0 or np.ptp(ms) == 0:
        return SpendIndependence(None, None, n)
    return SpendIndependence(
        float(pearsonr(xs, ms).statistic), float(spearmanr(xs, ms).statistic), n
    )


# --------------------------------------------------------------------------------------------
# Holdout validation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldoutValidation:
    """Calibration-fitted model against the holdout period.

    `by_frequency` has one row per calibration frequency bucket "0".."6", "7+":
    frequency_bucket, customers, actual_mean, predicted_mean.
    """

    n_customers: int
    holdout_length: float
    total_actual: float
    total_predicted: float
    mae: float
    by_frequency: pl.DataFrame

    def as_metadata(self) -> dict[str, Any]:
        return {
            "n_customers": self.n_customers,
            "holdout_length": self.holdout_length,
            "total_actual": self.total_actual,
            "total_predicted": round(self.total_predicted, 4),
            "total_error_pct": round(
                100 * (self.total_predicted - self.total_actual) / self.total_actual, 3
            )
            if self.total_actual
            else None,
            "mae": round(self.mae, 6),
            "by_frequency": self.by_frequency.to_dicts(),
        }


def holdout_validation(
    bgnbd: Mapping[str, float] | FitResult,
    x_cal: Any,
    t_x_cal: Any,
    T_cal: Any,
    holdout_purchases: Any,
    holdout_length: float,
) -> HoldoutValidation:
    """Compare predicted and actual repeat purchases in the holdout period.

    Times in the model's unit; `holdout_length` is the holdout duration (same for everyone, as in
    `sql/marts/calibration_holdout.sql`), `holdout_purchases` the distinct order days in it.
    """
    x, t_x, T, actual = (
        np.asarray(v, dtype=float).ravel() for v in (x_cal, t_x_cal, T_cal, holdout_purchases)
    )
    predicted = expected_purchases(bgnbd, holdout_length, x, t_x, T)
    bucket = np.minimum(x, 7).astype(np.int64)
    counts = np.bincount(bucket, minlength=8)
    with np.errstate(invalid="ignore", divide="ignore"):
        actual_mean = np.bincount(bucket, weights=actual, minlength=8) / counts
        predicted_mean = np.bincount(bucket, weights=predicted, minlength=8) / counts
    table = pl.DataFrame(
        {
            "frequency_bucket": list(FREQUENCY_BUCKETS),
            "customers": counts.astype(np.int64),
            "actual_mean": np.where(counts > 0, actual_mean, np.nan),
            "predicted_mean": np.where(counts > 0, predicted_mean, np.nan),
        }
    ).with_columns(pl.col("actual_mean", "predicted_mean").fill_nan(None))
    return HoldoutValidation(
        n_customers=int(x.shape[0]),
        holdout_length=float(holdout_length),
        total_actual=float(actual.sum()),
        total_predicted=float(predicted.sum()),
        mae=float(np.mean(np.abs(predicted - actual))) if x.shape[0] else float("nan"),
        by_frequency=table,
    )


def calibration_plot_png(validation: HoldoutValidation, *, title: str | None = None) -> bytes:
    """Actual vs predicted mean holdout purchases by calibration frequency, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    table = validation.by_frequency
    labels = table["frequency_bucket"].to_list()
    pos = np.arange(len(labels))
    fig = Figure(figsize=(7, 4.2), dpi=100)
    ax = fig.add_subplot()
    ax.plot(pos, table["actual_mean"].to_numpy(), "o-", label="actual", color="#1f77b4")
    ax.plot(
        pos, table["predicted_mean"].to_numpy(), "s--", label="BG/NBD predicted", color="#d62728"
    )
    ax.set_xticks(pos, labels)
    ax.set_xlabel("repeat purchases in calibration period")
    ax.set_ylabel("mean repeat purchases in holdout")
    ax.set_title(
        title
        or (
            f"Holdout check: actual {validation.total_actual:,.0f} vs predicted "
            f"{validation.total_predicted:,.0f}"
        )
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# CDNOW sample
# --------------------------------------------------------------------------------------------

ORDER_EXPORT_COLUMNS = (
    "order_id",
    "customer_id",
    "email",
    "ordered_at",
    "net_amount",
    "currency",
    "status",
    "channel",
)


def cdnow_sample_path() -> Path:
    """Path of `CDNOW_sample.txt` inside the installed lifetimes package (no pkg_resources)."""
    import importlib.util

    spec = importlib.util.find_spec("lifetimes")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the lifetimes package is not installed")
    path = Path(spec.origin).parent / "datasets" / "CDNOW_sample.txt"
    if not path.exists():
        raise FileNotFoundError(path)
    return path


def load_cdnow_orders(path: str | Path | None = None) -> pl.DataFrame:
    """The CDNOW 1/10 sample (6,919 purchases by 2,357 customers, 1997-01..1998-06) as orders.

    The file has whitespace-separated columns: master customer id, sample customer id (1..2357),
    date (YYYYMMDD), number of CDs, dollar value. Each line becomes one completed web order in USD:
    order_id "cdnow-<line:05d>", customer_id "cdnow-<sample id:04d>", ordered_at the day at
    midnight, net_amount the dollar value, email null. Extra column `quantity` keeps the CD count.
    Eight purchases have a value of 0.
    """
    raw = pl.read_csv(
        path or cdnow_sample_path(),
        has_header=False,
        separator="\t",
        new_columns=["line"],
        schema_overrides={"line": pl.String},
    )
    fields = raw.select(pl.col("line").str.strip_chars().str.extract_all(r"\S+").alias("f"))["f"]
    df = pl.DataFrame(
        {
            "sample_id": fields.list.get(1).cast(pl.Int64),
            "date": fields.list.get(2),
            "quantity": fields.list.get(3).cast(pl.Int64),
            "net_amount": fields.list.get(4).cast(pl.Float64),
        }
    )
    return df.with_row_index("line", offset=1).select(
        pl.format("cdnow-{}", pl.col("line").cast(pl.String).str.zfill(5)).alias("order_id"),
        pl.format("cdnow-{}", pl.col("sample_id").cast(pl.String).str.zfill(4)).alias(
            "customer_id"
        ),
        pl.lit(None, dtype=pl.String).alias("email"),
        pl.col("date").str.strptime(pl.Datetime("us"), "%Y%m%d").alias("ordered_at"),
        pl.col("net_amount"),
        pl.lit("USD").alias("currency"),
        pl.lit("completed").alias("status"),
        pl.lit("web").alias("channel"),
        pl.col("quantity"),
    )


def write_cdnow_orders_csv(path: str | Path, source: str | Path | None = None) -> Path:
    """Write the CDNOW sample as an orders export CSV with exactly the contract's order columns.

    Timestamps are written as ISO 8601 (`1997-01-01T00:00:00`), email empty.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    orders = load_cdnow_orders(source).select(ORDER_EXPORT_COLUMNS)
    orders.write_csv(path, datetime_format="%Y-%m-%dT%H:%M:%S")
    return path
