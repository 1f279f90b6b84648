"""Per-customer purchase summaries in days (SQL), and the model time unit."""

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import polars as pl

from engagement_box.sql import load_sql

TimeUnit = Literal["D", "W"]
DAYS_PER_UNIT: dict[str, float] = {"D": 1.0, "W": 7.0}


def fx_parameters(
    currency: str | None, fx_rates: Mapping[str, float] | None = None
) -> dict[str, list | None]:
    """SQL parameters converting amounts into `currency` (None: single-currency data, no
    conversion). Orders in a currency with no rate are left out of the summaries."""
    if currency is None:
        return {"fx_currencies": None, "fx_rates": None}
    rates = {str(k).upper(): float(v) for k, v in (fx_rates or {}).items()}
    rates[currency.upper()] = 1.0
    return {"fx_currencies": list(rates), "fx_rates": list(rates.values())}


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
    in currencies without a rate left out)."""
    con.execute(load_sql("marts/create_currency_macros"))
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
    con.execute(load_sql("marts/create_currency_macros"))
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
