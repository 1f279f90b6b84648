"""Per-customer purchase summaries in days (SQL), and the model time unit.

The customer of an order is the one customer of every metric: the identity-resolved buyer
(`intermediate.orders_resolution.buyer_id`: the customer found by id, else by email, else the
staged id). A database with staged orders but no identity links (e.g. a reproduction from an
orders file alone) groups by the staged id, which is the same customer there.

The orders are read once: `work.buyer_days` (`sql/work/buyer_days.sql`, built by
`refresh_buyer_days`) holds the completed orders per customer and order day in the reporting
currency, for every staged day, and the customer summary, the calibration/holdout split and the
cohort retention all read it (`stored=True`). It does not depend on the as-of, so every partition
reads the same table; new orders files are added to it without reading the other orders again.
Without `stored`, a summary builds this connection's own copy from the orders first.
"""

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import polars as pl

from engagement_box import incremental
from engagement_box.sql import (
    columns,
    load_sql,
    relation_exists,
    sql_template,
    table_exists,
    transaction,
)
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
    if table_exists(con, "staging", "fx_rates"):
        row = con.execute(
            load_sql("work/reporting_currency_rates"), {"currency": currency.upper()}
        ).fetchone()
        problem = export_rates_problem(currency, row)
        if problem:
            raise ValueError(problem)
        jumps = con.execute(
            load_sql("work/fx_rate_jumps"),
            {"currency": currency.upper(), "max_jump": MAX_RATE_JUMP},
        ).fetchall()
        problem = rate_jumps_problem(currency, jumps)
        if problem:
            raise ValueError(problem)
        con.execute(load_sql("work/insert_reporting_rates"), {"currency": currency.upper()})


def export_rates_problem(currency: str, row: Sequence[Any] | None) -> str | None:
    """Why the fx_rates export cannot be read as rates into `currency` (the row of
    `sql/work/reporting_currency_rates.sql`: rows of the currency itself at a rate other than
    1, lowest, highest), or None. Both engines ask it before converting."""
    if not row or not row[0]:
        return None
    return (
        f"the fx_rates export gives {currency.upper()}, the reporting currency "
        f"(ENGAGEMENT_CURRENCY), rates other than 1 ({int(row[0])} row(s), {float(row[1]):g} "
        f"to {float(row[2]):g}): its rates are into another currency. The export's rates must "
        "be into the reporting currency (docs/CONTRACTS.md, fx_rates): export them again for "
        f"{currency.upper()}, or set ENGAGEMENT_CURRENCY to the export's currency"
    )


# How far one dated rate of a currency may be from its previous one (a factor, either way):
# further is a typo or a rate the wrong way round (`sql/work/fx_rate_jumps.sql`). Five, not ten:
# a decimal point moved (1.4229 written 14.229 after 1.4287) is a step of 9.96 (a Spark user's
# review found it published, CLV +8.3 %); the largest one-day moves of floated currencies are
# near 2 (the peso in December 2023: 366 to 800).
MAX_RATE_JUMP = 5.0


def rate_jumps_problem(currency: str, jumps: Sequence[Sequence[Any]]) -> str | None:
    """Why the fx_rates export's rates cannot be converted with: consecutive dated rates of a
    currency more than `MAX_RATE_JUMP` times apart (the rows of `sql/work/fx_rate_jumps.sql`),
    or None. A review: NOK at 95 for 0.095 valued one customer's two orders of 100 NOK at 9,509
    and moved the spend model of every customer, without a word. Both engines ask it before
    converting."""
    if not jumps:
        return None
    shown = []
    for jump in jumps[:3]:
        currency_of, before, before_rate, before_file, before_row, day, rate, file, row = jump
        factor = max(float(rate) / float(before_rate), float(before_rate) / float(rate))
        shown.append(
            f"{currency_of} {float(rate):g} on {day} ({file} row {row}) after "
            f"{float(before_rate):g} on {before} ({before_file} row {before_row}): {factor:,.0f}x"
        )
    more = f" and {len(jumps) - 3} more" if len(jumps) > 3 else ""
    return (
        f"the fx_rates export has rates into {currency.upper()} that jump more than "
        f"{MAX_RATE_JUMP:g}x from one dated rate of a currency to the next: {'; '.join(shown)}"
        f"{more}. Such a step is a typo or a rate the wrong way round (the export's rates are "
        f"units of {currency.upper()} for one unit of the currency), and converting with it "
        "would publish wrong money. Correct the row in its file (a corrected row in a new file "
        "is quarantined as a repeat of the first) and run again; a currency whose rate truly "
        "moves so far needs rates on dates between, so that no step does"
    )


def orders_left_out(
    con: Any, as_of: Any, *, currency: str | None, fx_rates: Mapping[str, float] | None = None
) -> tuple[dict[str, int], int]:
    """Completed orders up to `as_of` left out of the value models for want of an FX rate, per
    currency, and all completed orders up to `as_of` (the share's base)."""
    prepare_currency(con, currency)
    fx = fx_parameters(currency, fx_rates)
    rows = con.execute(
        load_sql("work/orders_without_rate"),
        {"as_of": as_of, "fx_currencies": fx["fx_currencies"]},
    ).fetchall()
    left_out = {str(c): int(n) for c, n, _ in rows if n}
    return left_out, sum(int(total) for _, _, total in rows)


def customers_left_out(
    con: Any,
    as_of: Any,
    *,
    currency: str | None,
    fx_rates: Mapping[str, float] | None = None,
    left_out: Mapping[str, int] | None = None,
) -> pl.DataFrame:
    """The resolved customers with completed orders up to `as_of` left out of the value models
    for want of an FX rate (`sql/work/customers_without_rate.sql`): customer_id and
    orders_left_out. Those without a row in the customer summary have no valued order: they get
    no RFM segment and are never prospects (`rfm.score_rfm`'s `left_out`). `left_out`: the
    caller's `orders_left_out` of the same as-of on the same connection, which prepared its
    rates, when it has it (else counted here)."""
    if left_out is None:
        left_out, _ = orders_left_out(con, as_of, currency=currency, fx_rates=fx_rates)
    if not any(left_out.values()):  # the usual run: the orders' count costs a third of resolving
        return pl.DataFrame(  # them (0.26 against 0.6-0.9 CPU-s at 10M orders, 2026-12-07)
            schema={"customer_id": pl.String, "orders_left_out": pl.Int64}
        )
    fx = fx_parameters(currency, fx_rates)
    return con.execute(
        load_sql("work/customers_without_rate", **orders_source(con)),
        {"as_of": as_of, "fx_currencies": fx["fx_currencies"]},
    ).pl()


def left_out_customer_counts(left_out: pl.DataFrame, buyers: Any) -> dict[str, int]:
    """How many of `customers_left_out`'s customers have no valued order (no id in `buyers`,
    the customer summary's ids: left out of every value model and of the RFM segments) and how
    many have some of their orders valued (scored on those only), for the run's metadata."""
    ids = left_out["customer_id"].cast(pl.String)
    valued = int(ids.is_in(pl.Series(buyers, dtype=pl.String).implode()).sum()) if len(ids) else 0
    return {"customers_left_out": len(ids) - valued, "customers_partly_left_out": valued}


def orders_source(con: Any, resolve_identity: bool | None = None) -> dict[str, str]:
    """Where the summaries read orders and their customer (identifiers for `load_sql`).

    resolve_identity: True = through the identity links (an error when they are not built),
    False = the staged ids, None = the links when they are built, else the staged ids."""
    if resolve_identity is None:
        resolve_identity = relation_exists(con, "intermediate", "orders_resolution")
    if resolve_identity:
        return {
            "orders_schema": "intermediate",
            "orders_table": "orders_resolution",
            "customer_column": "buyer_id",
        }
    return {"orders_schema": "staging", "orders_table": "orders", "customer_column": "customer_id"}


# The stored orders per customer and day, and the name its state is recorded under
# (`engagement_box.incremental`, one state: as_of NULL).
BUYER_DAYS = "buyer_days"
_STORED = {"days_schema": "work", "days_table": BUYER_DAYS}
# day_spend is stored as DECIMAL(18, 4) (64-bit) when every day's spend fits, which it does
# unless one customer spends 1e14 in a day: the 128-bit DECIMAL(38, 4) the sums work in costs
# 3x more to write and to read back. Sums of it are DECIMAL(38, 4) again, so every summary is
# exact either way. Wider values turn the column into DECIMAL(38, 4) (no value is cut).
# The statements: sql/work/create_buyer_days_narrow.sql, widen_buyer_days_spend.sql; _NARROW is
# the type as the catalog names it.
_NARROW = "DECIMAL(18,4)"
_CHANGED = {"days_schema": "temp", "days_table": "changed_days"}


def buyer_days_settings(currency: str | None, fx_rates_json: str | None) -> dict[str, str]:
    """The settings `work.buyer_days` is computed with (recorded with its rows)."""
    return {"currency": str(currency), "fx_rates": fx_rates_json or "{}"}


def _buyer_days_sql(orders: Mapping[str, str]) -> str:
    return load_sql("work/buyer_days", **orders)


def days_source(
    con: Any,
    *,
    stored: bool,
    currency: str | None,
    fx_rates: Mapping[str, float] | None,
    resolve_identity: bool | None = None,
) -> dict[str, str]:
    """Where a summary reads the orders per customer and day (identifiers for `load_sql`): the
    stored `work.buyer_days`, or (`stored` False) this connection's own `buyer_days`, built here
    from `orders_source(con, resolve_identity)`."""
    if stored:
        if not table_exists(con, "work", BUYER_DAYS):
            raise ValueError("work.buyer_days is not built yet: materialize work/buyer_days first")
        return dict(_STORED)
    prepare_currency(con, currency)
    con.execute(
        sql_template("work/create_temp_buyer_days").format(
            buyer_days=_buyer_days_sql(orders_source(con, resolve_identity))
        ),
        fx_parameters(currency, fx_rates),
    )
    return {"days_schema": "temp", "days_table": BUYER_DAYS}


def buyer_days_problem(con: Any, now: Mapping) -> str | None:
    """Why the stored `work.buyer_days` does not hold the orders as staged now (`now =
    incremental.inputs(con, buyer_days_settings(...))`), or None when it does."""
    if not table_exists(con, "work", BUYER_DAYS):
        return "work.buyer_days is not built yet"
    state = incremental.state(con, BUYER_DAYS, None)
    if state is None:
        return "work.buyer_days has no record of what it was computed from"
    recorded = {k: v for k, v in state.items() if k != "rows"}
    if recorded != json.loads(json.dumps(now, default=str)):
        return "work.buyer_days was computed from other staged orders or settings than now's"
    return None


def refresh_buyer_days(
    con: Any,
    now: Mapping,
    *,
    currency: str | None,
    fx_rates: Mapping[str, float] | None = None,
) -> incremental.Plan:
    """Bring `work.buyer_days` up to the staged orders (identity-resolved, `now` =
    `incremental.inputs(con, buyer_days_settings(...))`), in one transaction with its state.

    Cold: every staged order, read once. Incremental (`engagement_box.incremental.plan`: the only
    change is new orders files): the new files' orders alone, resolved and converted, added to
    the rows of their customer and day. An order's customer depends on its own row and the
    customers only, and its rate on its currency and day (a rate that holds through the last
    staged order covers new days the same way), so both paths give the same rows. No new staged
    order: the rows stay as they are (a new file with no staged row is recorded). Returns the
    plan taken."""
    plan = incremental.plan(con, BUYER_DAYS, None, now, rows=load_sql("work/count_buyer_days"))
    if plan.incremental and not plan.new_files:
        if buyer_days_problem(con, now) is not None:  # e.g. a new file whose rows all failed
            with transaction(con):
                _record_buyer_days(con, now)
        return plan
    prepare_currency(con, currency)
    fx = fx_parameters(currency, fx_rates)
    if not plan.incremental:
        sql = _buyer_days_sql(orders_source(con, resolve_identity=True))
        with transaction(con):
            con.execute(load_sql("marts/create_schema", schema="work"))
            con.execute(sql_template("work/create_buyer_days_narrow").format(buyer_days=sql), fx)
            # a day's spend past DECIMAL(18, 4)
            if con.execute(load_sql("work/count_overflowed_buyer_days")).fetchone()[0]:
                con.execute(sql_template("work/create_buyer_days_wide").format(buyer_days=sql), fx)
            _record_buyer_days(con, now)
        return plan
    con.execute(load_sql("work/new_orders"), {"new_files": list(plan.new_files)})
    new_orders = {
        "orders_schema": "temp",
        "orders_table": "new_orders",
        "customer_column": "buyer_id",
    }
    con.execute(
        sql_template("work/create_new_buyer_days").format(buyer_days=_buyer_days_sql(new_orders)),
        fx,
    )
    con.execute(load_sql("work/merged_buyer_days"))
    with transaction(con):
        narrow = dict(columns(con, "work", BUYER_DAYS))["day_spend"] == _NARROW
        if narrow and con.execute(load_sql("work/count_too_wide_merged_buyer_days")).fetchone()[0]:
            con.execute(load_sql("work/widen_buyer_days_spend"))
        con.execute(load_sql("work/delete_merged_buyer_days"))
        con.execute(load_sql("work/insert_merged_buyer_days"))
        _record_buyer_days(con, now)
    return plan


def _record_buyer_days(con: Any, now: Mapping) -> None:
    if not now["files"]:
        return  # staged without a record of files (e.g. a test's seeded tables): no state
    rows = con.execute(load_sql("work/count_buyer_days")).fetchone()[0]
    for statement, parameters in incremental.record(con, BUYER_DAYS, None, now, rows):
        con.execute(statement, parameters)


def customer_summary(
    con: Any,
    as_of: Any,
    start: Any = None,
    *,
    currency: str | None = None,
    fx_rates: Mapping[str, float] | None = None,
    resolve_identity: bool | None = None,
    stored: bool = False,
) -> pl.DataFrame:
    """Run `sql/work/customer_summary.sql` on a DuckDB connection; `as_of` is inclusive.

    With `currency`, spend is in that currency (other currencies converted by `fx_rates`, orders
    in currencies without a rate left out); a dated rate of the staged `fx_rates` export comes
    before the setting's rate. Orders per customer and day: `days_source` (`stored`: the
    stored `work.buyer_days`, built with these settings; else from `orders_source(con,
    resolve_identity)`)."""
    days = days_source(
        con, stored=stored, currency=currency, fx_rates=fx_rates, resolve_identity=resolve_identity
    )
    return _summary(con, as_of, start, days)


def _summary(con: Any, as_of: Any, start: Any, days: Mapping[str, str]) -> pl.DataFrame:
    sql = load_sql("work/customer_summary", **days)
    return con.execute(sql, {"as_of": as_of, "start": start}).pl()


def calibration_holdout(
    con: Any,
    calibration_end: Any,
    as_of: Any,
    start: Any = None,
    *,
    currency: str | None = None,
    fx_rates: Mapping[str, float] | None = None,
    resolve_identity: bool | None = None,
    stored: bool = False,
) -> pl.DataFrame:
    """Run `sql/work/calibration_holdout.sql`: calibration summary + holdout purchase counts
    (orders per customer and day: `days_source`, as `customer_summary`)."""
    days = days_source(
        con, stored=stored, currency=currency, fx_rates=fx_rates, resolve_identity=resolve_identity
    )
    return _holdout(con, calibration_end, as_of, start, days)


def _holdout(
    con: Any, calibration_end: Any, as_of: Any, start: Any, days: Mapping[str, str]
) -> pl.DataFrame:
    sql = load_sql("work/calibration_holdout", **days)
    params = {"calibration_end": calibration_end, "as_of": as_of, "start": start}
    return con.execute(sql, params).pl()


def cohort_retention(
    con: Any,
    as_of: Any,
    *,
    currency: str | None = None,
    fx_rates: Mapping[str, float] | None = None,
    resolve_identity: bool | None = None,
    stored: bool = False,
) -> pl.DataFrame:
    """Run `sql/work/cohort_retention.sql`: customers by first-order month and months since,
    with active customers, orders, revenue (reporting currency) and the retention share. The
    same completed orders, customers and currency rule as `customer_summary` (`days_source`)."""
    days = days_source(
        con, stored=stored, currency=currency, fx_rates=fx_rates, resolve_identity=resolve_identity
    )
    sql = load_sql("work/cohort_retention", **days)
    return con.execute(sql, {"as_of": as_of}).pl()


def cohort_retention_since(
    con: Any, previous: Any, new_files: Sequence[str], as_of: Any
) -> tuple[pl.DataFrame, Any]:
    """`cohort_retention` as of `as_of` from the rows of an earlier as-of `previous` (the
    incremental path: only `new_files` of orders arrived since), read from the stored
    `work.buyer_days` and `work.customer_summary` of `as_of`: the months from the earliest one
    with a new order or a day after `previous` are counted again, the earlier ones carried
    (`sql/work/carried_cohort_retention.sql`). Returns the rows and that first recounted month."""
    first_day = previous + dt.timedelta(days=1)
    earliest = con.execute(
        load_sql("work/earliest_new_order_day"), {"new_files": list(new_files)}
    ).fetchone()[0]
    if earliest is not None:
        first_day = min(first_day, earliest)
    changed_month = first_day.replace(day=1)
    rows = con.execute(
        load_sql("work/carried_cohort_retention"),
        {"as_of": as_of, "previous": previous, "changed_month": changed_month},
    ).pl()
    return rows, changed_month


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
) -> tuple[pl.DataFrame, int]:
    """`customer_summary` as of `as_of` from the rows of an earlier as-of `previous` (the
    incremental path, `engagement_box.incremental`): the customers with an order in `new_files`
    or ordered after `previous` are recomputed from all their days in the stored
    `work.buyer_days`, the others keep their row with T moved to `as_of`. Returns the rows and
    how many customers were recomputed."""
    changed = incremental.mark_changed_customers(con, new_files, [(previous, as_of)])
    fresh = _summary(con, as_of, None, _changed_days(con))
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
) -> tuple[pl.DataFrame, int]:
    """`calibration_holdout` from the rows of an earlier as-of `previous` (whose calibration
    ended `previous_calibration_end`): the customers with an order in `new_files`, or on a day
    that moved from the holdout into the calibration window, or after `previous`, are
    recomputed from the stored `work.buyer_days`; the others keep their row with T and the
    holdout length moved."""
    changed = incremental.mark_changed_customers(
        con, new_files, [(previous_calibration_end, calibration_end), (previous, as_of)]
    )
    fresh = _holdout(con, calibration_end, as_of, None, _changed_days(con))
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


def _changed_days(con: Any) -> dict[str, str]:
    """This connection's `changed_days`: the stored days of the changed customers."""
    days_source(con, stored=True, currency=None, fx_rates=None)  # a plain error when missing
    con.execute(load_sql("work/changed_days"))
    return dict(_CHANGED)
