"""Per-customer purchase summaries in days (SQL), and the model time unit.

The customer of an order is the one customer of every metric: the identity-resolved buyer
(`intermediate.orders_resolution.buyer_id`: the customer found by id, else by email, else the
staged id). A database with staged orders but no identity links (e.g. a reproduction from an
orders file alone) groups by the staged id, which is the same customer there.
"""

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


def orders_source(con: Any, resolve_identity: bool | None = None) -> dict[str, str]:
    """Where the summaries read orders and their customer (identifiers for `load_sql`).

    resolve_identity: True = through the identity links (an error when they are not built),
    False = the staged ids, None = the links when they are built, else the staged ids."""
    if resolve_identity is None:
        row = con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = 'intermediate' AND table_name = 'orders_resolution'"
        ).fetchone()
        resolve_identity = bool(row and row[0])
    if resolve_identity:
        return {
            "orders_schema": "intermediate",
            "orders_table": "orders_resolution",
            "customer_column": "buyer_id",
        }
    return {"orders_schema": "staging", "orders_table": "orders", "customer_column": "customer_id"}


def customer_summary(
    con: Any,
    as_of: Any,
    start: Any = None,
    *,
    currency: str | None = None,
    fx_rates: Mapping[str, float] | None = None,
    resolve_identity: bool | None = None,
) -> pl.DataFrame:
    """Run `sql/marts/customer_summary.sql` on a DuckDB connection; `as_of` is inclusive.

    With `currency`, spend is in that currency (other currencies converted by `fx_rates`, orders
    in currencies without a rate left out). Customers: `orders_source(con, resolve_identity)`."""
    con.execute(load_sql("marts/create_currency_macros"))
    sql = load_sql("marts/customer_summary", **orders_source(con, resolve_identity))
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
    resolve_identity: bool | None = None,
) -> pl.DataFrame:
    """Run `sql/marts/calibration_holdout.sql`: calibration summary + holdout purchase counts."""
    con.execute(load_sql("marts/create_currency_macros"))
    sql = load_sql("marts/calibration_holdout", **orders_source(con, resolve_identity))
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
