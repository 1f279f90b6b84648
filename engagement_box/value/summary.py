"""Per-customer purchase summaries in days (SQL), and the model time unit.

The customer of an order is the one customer of every metric: the identity-resolved buyer
(`intermediate.orders_resolution.buyer_id`: the customer found by id, else by email, else the
staged id). A database with staged orders but no identity links (e.g. a reproduction from an
orders file alone) groups by the staged id, which is the same customer there.
"""

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import polars as pl

from engagement_box import incremental
from engagement_box.sql import load_sql, relation_exists
from engagement_box.staging.contracts import MAX_RATE

TimeUnit = Literal["D", "W"]
DAYS_PER_UNIT: dict[str, float] = {"D": 1.0, "W": 7.0}


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
    con.execute(load_sql("work/create_currency_macros"))
    if currency is None:
        return
    has_rates = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'staging' AND table_name = 'fx_rates'"
    ).fetchone()[0]
    if has_rates:
        con.execute(load_sql("work/insert_reporting_rates"), {"currency": currency.upper()})


def orders_left_out(
    con: Any, as_of: Any, *, currency: str | None, fx_rates: Mapping[str, float] | None = None
) -> tuple[dict[str, int], int]:
    """Completed orders up to `as_of` left out of the value models for want of an FX rate, per
    currency, and all completed orders up to `as_of` (the share's base)."""
    prepare_currency(con, currency)
    fx = fx_parameters(currency, fx_rates)
    left_out = con.execute(
        load_sql("work/orders_without_rate"),
        {"as_of": as_of, "fx_currencies": fx["fx_currencies"]},
    ).fetchall()
    completed = con.execute(
        "SELECT count(*) FROM staging.orders "
        "WHERE status = 'completed' AND ordered_at < CAST($as_of AS DATE) + 1",
        {"as_of": as_of},
    ).fetchone()[0]
    return {str(c): int(n) for c, n in left_out}, int(completed)


def orders_source(
    con: Any, resolve_identity: bool | None = None, only_changed: bool = False
) -> dict[str, str]:
    """Where the summaries read orders and their customer (identifiers for `load_sql`).

    resolve_identity: True = through the identity links (an error when they are not built),
    False = the staged ids, None = the links when they are built, else the staged ids.
    only_changed: only the orders of the changed customers (this connection's `changed_orders`,
    `engagement_box.incremental.mark_changed_customers`), resolved through the links."""
    if only_changed:
        return {
            "orders_schema": "temp",
            "orders_table": "changed_orders",
            "customer_column": "buyer_id",
        }
    if resolve_identity is None:
        resolve_identity = relation_exists(con, "intermediate", "orders_resolution")
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
    only_changed: bool = False,
) -> pl.DataFrame:
    """Run `sql/work/customer_summary.sql` on a DuckDB connection; `as_of` is inclusive.

    With `currency`, spend is in that currency (other currencies converted by `fx_rates`, orders
    in currencies without a rate left out); a dated rate of the staged `fx_rates` export comes
    before the setting's rate. Customers: `orders_source(con, resolve_identity, only_changed)`."""
    prepare_currency(con, currency)
    sql = load_sql("work/customer_summary", **orders_source(con, resolve_identity, only_changed))
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
    only_changed: bool = False,
) -> pl.DataFrame:
    """Run `sql/work/calibration_holdout.sql`: calibration summary + holdout purchase counts
    (customers: `orders_source(con, resolve_identity, only_changed)`)."""
    prepare_currency(con, currency)
    sql = load_sql("work/calibration_holdout", **orders_source(con, resolve_identity, only_changed))
    params = {
        "calibration_end": calibration_end,
        "as_of": as_of,
        "start": start,
        **fx_parameters(currency, fx_rates),
    }
    return con.execute(sql, params).pl()


def cohort_retention(
    con: Any,
    as_of: Any,
    *,
    currency: str | None = None,
    fx_rates: Mapping[str, float] | None = None,
    resolve_identity: bool | None = None,
) -> pl.DataFrame:
    """Run `sql/work/cohort_retention.sql`: customers by first-order month and months since,
    with active customers, orders, revenue (reporting currency) and the retention share. The
    same completed orders, customers and currency rule as `customer_summary`."""
    prepare_currency(con, currency)
    sql = load_sql("work/cohort_retention", **orders_source(con, resolve_identity))
    params = {"as_of": as_of, **fx_parameters(currency, fx_rates)}
    return con.execute(sql, params).pl()


def to_time_unit(days: Any, time_unit: TimeUnit) -> np.ndarray:
    """Convert a duration in days to the model's unit (weeks = days / 7)."""
    return np.asarray(days, dtype=float) / DAYS_PER_UNIT[_check_unit(time_unit)]


def _check_unit(time_unit: str) -> str:
    if time_unit not in DAYS_PER_UNIT:
        raise ValueError(f"time_unit must be one of {sorted(DAYS_PER_UNIT)}, got {time_unit!r}")
    return time_unit


def customer_summary_since(
    con: Any,
    previous: Any,
    new_files: Sequence[str],
    as_of: Any,
    *,
    currency: str | None = None,
    fx_rates: Mapping[str, float] | None = None,
) -> tuple[pl.DataFrame, int]:
    """`customer_summary` as of `as_of` from the rows of an earlier as-of `previous` (the
    incremental path, `engagement_box.incremental`): the customers with an order in `new_files`
    or ordered after `previous` are recomputed from all their orders, the others keep their row
    with T moved to `as_of`. Returns the rows and how many customers were recomputed."""
    changed = incremental.mark_changed_customers(con, new_files, [(previous, as_of)])
    fresh = customer_summary(con, as_of, currency=currency, fx_rates=fx_rates, only_changed=True)
    carried = con.execute(
        load_sql("work/carried_customer_summary"), {"previous": previous, "as_of": as_of}
    ).pl()
    return pl.concat([fresh, carried.select(fresh.columns)]), changed


def calibration_holdout_since(
    con: Any,
    previous: Any,
    previous_calibration_end: Any,
    new_files: Sequence[str],
    calibration_end: Any,
    as_of: Any,
    *,
    currency: str | None = None,
    fx_rates: Mapping[str, float] | None = None,
) -> tuple[pl.DataFrame, int]:
    """`calibration_holdout` from the rows of an earlier as-of `previous` (whose calibration
    ended `previous_calibration_end`): the customers with an order in `new_files`, or on a day
    that moved from the holdout into the calibration window, or after `previous`, are
    recomputed; the others keep their row with T and the holdout length moved."""
    changed = incremental.mark_changed_customers(
        con, new_files, [(previous_calibration_end, calibration_end), (previous, as_of)]
    )
    fresh = calibration_holdout(
        con, calibration_end, as_of, currency=currency, fx_rates=fx_rates, only_changed=True
    )
    carried = con.execute(
        load_sql("work/carried_calibration_holdout"),
        {
            "previous": previous,
            "previous_calibration_end": previous_calibration_end,
            "calibration_end": calibration_end,
            "as_of": as_of,
        },
    ).pl()
    return pl.concat([fresh, carried.select(fresh.columns)]), changed
