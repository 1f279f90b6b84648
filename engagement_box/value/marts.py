"""The rows of the value marts model_fit, customer_value and model_validation, built one way for
both engines: the DuckDB engine's assets (`assets/value.py`) and the Spark engine
(`engagement_box/spark/value.py`) call these functions, so a column is defined once.

The Spark engine calls them on grouped rows with counts (the fits) and per Arrow batch of
customers (the scores); the DuckDB engine on one row per customer. No Dagster import here.
"""

import datetime as dt
import functools
import importlib.metadata
import json
from typing import Any

import numpy as np
import polars as pl

from engagement_box.clock import utc_now
from engagement_box.value import fitting, purchase_models, selection, uncertainty
from engagement_box.value import summary as summaries
from engagement_box.value.grouping import unique_rows
from engagement_box.value.horizons import DAY_HORIZONS, RANGE_HORIZON

WINDOWS = ("full", "calibration")


@functools.cache
def library_versions() -> str:
    """The fitting libraries' versions, recorded with each fit (read once per process: each
    lookup scans the installed packages' metadata)."""
    names = ("lifetimes", "numpy", "scipy", "pandas", "duckdb")
    return json.dumps({n: importlib.metadata.version(n) for n in names})


def purchase_fits(
    x: Any,
    t_x: Any,
    T: Any,
    unit: str,
    penalizer: float,
    counts: Any = None,
    starts: dict[str, dict[str, float]] | None = None,
    models: tuple[str, ...] = purchase_models.MODEL_NAMES,
) -> dict[str, fitting.FitResult]:
    """The purchase `models` (default: every one) fitted on one window (each on its grouped
    rows; with `counts`, the rows given are already grouped); a failed fit is kept with
    `converged` False and the reason. `starts`: parameters by model of an earlier fit to start
    from (BG/NBD uses them, see `fitting.fit_bgnbd`)."""
    if counts is None and np.shape(x) == np.shape(t_x) == np.shape(T):
        # Group the customers once for the three models (each would group them again: 0.04
        # CPU-s per model and window at 1M customers); the distinct rows with their counts give
        # every fit exactly the rows it makes itself.
        (x, t_x, T), _, counts = unique_rows(x, t_x, T, return_inverse=False)
    fits = {}
    for name in models:
        if name == "bgnbd":
            fits[name] = fitting.fit_bgnbd(
                x,
                t_x,
                T,
                time_unit=unit,
                penalizer=penalizer,
                raise_on_failure=False,
                counts=counts,
                start=(starts or {}).get(name),
            )
        else:
            fits[name] = purchase_models.fit_model(
                name, x, t_x, T, time_unit=unit, raise_on_failure=False, counts=counts
            )
    return fits


def fit_row(fit: fitting.FitResult, window_name: str, end, unit: str, chosen: bool) -> dict:
    """One row of model_fit."""
    params = fit.params
    return {
        "model": fit.model,
        "window": window_name,
        "window_end": end,
        "time_unit": unit,
        "converged": fit.converged,
        "message": fit.message or None,
        "reason": fit.reason,
        "r": params.get("r"),
        "alpha": params.get("alpha"),
        "a": params.get("a"),
        "b": params.get("b"),
        "p": params.get("p"),
        "q": params.get("q"),
        "gamma": params.get("v"),
        "params": json.dumps(params),
        "log_likelihood": fit.log_likelihood,
        "n_customers": fit.n_customers,
        "n_rows": fit.n_rows,
        "penalizer": fit.penalizer,
        "fit_seconds": fit.fit_seconds,
        "chosen": chosen,
        "library_versions": library_versions(),
        "fitted_at": utc_now(),
    }


def fit_table(
    fits: dict[str, dict[str, fitting.FitResult]],
    ends: dict[str, dt.date],
    unit: str,
    chosen: str | None,
    correlation: dict[str, Any],
    choice_as_of: dt.date,
    choice_reason: str | None = None,
) -> pl.DataFrame:
    """model_fit's rows (without as_of): the fits of both windows in `fits`, the chosen model
    marked, the as-of whose holdout chose it and why, the full window's frequency-spend
    correlation on every row."""
    rows = [
        fit_row(fit, name, ends[name], unit, chosen=fit.model == chosen)
        for name in WINDOWS
        for fit in fits.get(name, {}).values()
    ]
    return pl.DataFrame(rows).with_columns(
        pl.lit(json.dumps(correlation)).alias("frequency_spend_correlation"),
        pl.lit(choice_as_of, dtype=pl.Date).alias("choice_as_of"),
        pl.lit(choice_reason, dtype=pl.String).alias("choice_reason"),
    )


def comparison(
    cal: pl.DataFrame, unit: str, pinned: str | None, fits: dict[str, fitting.FitResult]
) -> tuple[selection.ModelComparison | None, str]:
    """The models compared on the holdout with the calibration `fits` (none is fitted again),
    or (None, why) when no model can be chosen."""
    try:
        result = selection.compare_models(cal, time_unit=unit, pinned=pinned, fits=fits)
    except fitting.ModelFitError as exc:
        return None, str(exc)
    return result, result.reason


# The per-model totals of a holdout comparison, as model_validation's columns name them.
VALIDATION_TOTALS = (
    "model",
    "converged",
    "total_actual",
    "total_predicted",
    "total_error_pct",
    "mae_per_customer",
    "mse_per_customer",
    "calibration_log_likelihood",
    "chosen",
)


def validation_table(
    result: selection.ModelComparison, calibration_end: dt.date, as_of: dt.date
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(model_validation's rows, the per-model totals) of a holdout comparison."""
    totals = result.models.rename(
        {
            "mae": "mae_per_customer",
            "mse": "mse_per_customer",
            "log_likelihood": "calibration_log_likelihood",
        }
    ).select(VALIDATION_TOTALS)
    table = (
        result.by_frequency.join(totals, on="model", how="left")
        if result.by_frequency.height
        else totals
    ).with_columns(
        pl.lit(calibration_end).alias("calibration_end"),
        pl.lit(as_of, dtype=pl.Date).alias("choice_as_of"),
        pl.lit(as_of).alias("as_of"),
    )
    return table, totals


# One BLAS thread: the scores' products over every customer are memory-bound; OpenBLAS's second
# thread only spins (1M customers: 0.95 against 1.65-1.98 CPU-s, the same wall time and sums).
@fitting.one_blas_thread()
def score_table(
    customer_id: Any,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    m: np.ndarray,
    *,
    model: str,
    params: dict,
    gamma_gamma: dict,
    unit: str,
    months: int,
    monthly_discount_rate: float,
    margin: float,
    covariance: np.ndarray | None = None,
    gamma_gamma_covariance: np.ndarray | None = None,
) -> pl.DataFrame:
    """customer_value's columns from customer_id to clv_p90 for these customers (x, t_x, T in
    `unit`). The covariances of the fitted parameters come from all customers: None computes
    them from these rows (all of them), a batch of a larger set passes them in."""
    clv_args = {
        "months": months,
        "monthly_discount_rate": monthly_discount_rate,
        "margin": margin,
        "time_unit": unit,
    }
    horizons = [float(summaries.to_time_unit(days, unit)) for days in DAY_HORIZONS]
    scores = purchase_models.score_with(
        model, params, x, t_x, T, m, gamma_gamma=gamma_gamma, horizons=horizons, **clv_args
    )
    ranges = (
        uncertainty.intervals(
            model,
            params,
            x,
            t_x,
            T,
            m,
            horizon=horizons[DAY_HORIZONS.index(RANGE_HORIZON)],
            gamma_gamma=gamma_gamma,
            covariance=covariance,
            gamma_gamma_covariance=gamma_gamma_covariance,
            **clv_args,
        )
        if len(x)
        else None
    )

    def spread(column: str) -> np.ndarray:
        return ranges[column].to_numpy() if ranges is not None else np.zeros(len(x))

    columns = {
        "customer_id": customer_id,
        "frequency": x,
        "recency": t_x,
        "T": T,
        "monetary_value": m,
        "p_alive": scores["p_alive"],
        "p_churn": 1.0 - scores["p_alive"],
    }
    for days, expected in zip(DAY_HORIZONS, scores["expected_purchases"], strict=True):
        columns[f"expected_purchases_{days}d"] = expected
    for side in ("p10", "p90"):
        columns[f"expected_purchases_{RANGE_HORIZON}d_{side}"] = spread(
            f"expected_purchases_{side}"
        )
    columns["expected_order_value"] = scores["expected_order_value"]
    columns["clv"] = scores["clv"]
    for side in ("p10", "p90"):
        columns[f"clv_{side}"] = spread(f"clv_{side}")
    return pl.DataFrame(columns)
