"""sql/work/customer_summary.sql and calibration_holdout.sql against lifetimes' own summaries."""

import datetime as dt
import warnings

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pytest

from engagement_box.value.summary import calibration_holdout, customer_summary

ORDERS_DDL = """
create schema if not exists staging;
create table staging.orders (
    order_id varchar, customer_id varchar, email varchar, ordered_at timestamp,
    net_amount double, currency varchar, status varchar, channel varchar,
    source_file varchar, source_row bigint
)
"""

START = np.datetime64("2023-01-01T00:00:00")


def random_orders(seed: int, n_customers: int = 300) -> pl.DataFrame:
    """Orders with same-day repeats, times of day, all statuses and orders after any cutoff."""
    rng = np.random.default_rng(seed)
    per_customer = rng.geometric(0.35, n_customers)
    n = int(per_customer.sum())
    cust = np.repeat(np.arange(n_customers), per_customer)
    first = rng.integers(0, 500, n_customers)[cust]
    # Clustered days so that several orders land on the same day.
    day = first + np.where(rng.random(n) < 0.3, 0, rng.integers(0, 300, n))
    seconds = rng.integers(0, 86_400, n)
    ordered_at = START + day.astype("timedelta64[D]") + seconds.astype("timedelta64[s]")
    status = rng.choice(["completed", "returned", "cancelled"], n, p=[0.8, 0.1, 0.1])
    amount = np.round(rng.gamma(2.0, 30.0, n), 2)
    amount[rng.random(n) < 0.03] = 0.0
    return pl.DataFrame(
        {
            "order_id": [f"o{i:06d}" for i in range(n)],
            "customer_id": [f"c{c:04d}" for c in cust],
            "email": None,
            "ordered_at": ordered_at.astype("datetime64[us]"),
            "net_amount": amount,
            "currency": "EUR",
            "status": status,
            "channel": "web",
            "source_file": "test.csv",
            "source_row": np.arange(n),
        },
        schema_overrides={"email": pl.String},
    )


@pytest.fixture
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "test.duckdb"))
    connection.execute(ORDERS_DDL)
    yield connection
    connection.close()


def load(con, orders: pl.DataFrame) -> None:
    con.execute("delete from staging.orders")
    con.execute("insert into staging.orders by name select * from orders")


def lifetimes_summary(orders: pl.DataFrame, as_of: dt.date, start: dt.date | None = None):
    from lifetimes.utils import summary_data_from_transaction_data

    tx = orders.filter(pl.col("status") == "completed")
    if start is not None:
        tx = tx.filter(pl.col("ordered_at").dt.date() >= start)
    tx = tx.select("customer_id", "ordered_at", "net_amount").to_pandas()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = summary_data_from_transaction_data(
            tx,
            "customer_id",
            "ordered_at",
            monetary_value_col="net_amount",
            observation_period_end=pd.Timestamp(as_of),
            freq="D",
        )
    return out.sort_index()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("start", [None, dt.date(2023, 4, 1)])
def test_summary_matches_lifetimes(con, seed, start):
    orders = random_orders(seed)
    load(con, orders)
    as_of = dt.date(2024, 1, 31)
    ours = customer_summary(con, as_of, start).sort("customer_id")
    ref = lifetimes_summary(orders, as_of, start)

    assert ours["customer_id"].to_list() == ref.index.to_list()
    np.testing.assert_array_equal(ours["frequency"].to_numpy(), ref["frequency"].to_numpy())
    np.testing.assert_array_equal(ours["recency_days"].to_numpy(), ref["recency"].to_numpy())
    np.testing.assert_array_equal(ours["T_days"].to_numpy(), ref["T"].to_numpy())
    np.testing.assert_allclose(
        ours["monetary_value"].to_numpy(), ref["monetary_value"].to_numpy(), rtol=1e-12, atol=1e-9
    )
    # Frequency is distinct order days - 1, never order count - 1.
    assert (ours["order_days"] - 1 == ours["frequency"]).all()
    assert (ours["order_count"] >= ours["order_days"]).all()


def test_summary_order_columns(con):
    orders = random_orders(5)
    load(con, orders)
    as_of = dt.date(2023, 12, 31)
    ours = customer_summary(con, as_of).sort("customer_id")
    expected = (
        orders.filter((pl.col("status") == "completed") & (pl.col("ordered_at").dt.date() <= as_of))
        .group_by("customer_id")
        .agg(
            pl.col("ordered_at").min().dt.date().alias("first_order_date"),
            pl.col("ordered_at").max().dt.date().alias("last_order_date"),
            pl.col("order_id").n_unique().alias("order_count"),
            pl.col("net_amount").sum().alias("total_spend"),
        )
        .sort("customer_id")
    )
    assert ours["customer_id"].to_list() == expected["customer_id"].to_list()
    for col in ("first_order_date", "last_order_date", "order_count"):
        assert ours[col].to_list() == expected[col].to_list(), col
    np.testing.assert_allclose(ours["total_spend"], expected["total_spend"], rtol=1e-12)


def test_as_of_is_inclusive_and_only_completed_orders_count(con):
    rows = pl.DataFrame(  # noqa: F841 - read by DuckDB's replacement scan
        {
            "order_id": ["a", "b", "c", "d", "e"],
            "customer_id": ["x", "x", "x", "x", "y"],
            "ordered_at": [
                dt.datetime(2024, 1, 1, 9),
                dt.datetime(2024, 1, 1, 18),  # same day: one purchase occasion
                dt.datetime(2024, 1, 10, 23, 59),  # on as_of: counts
                dt.datetime(2024, 1, 11, 0, 1),  # after as_of: ignored
                dt.datetime(2024, 1, 5),  # cancelled: y has no completed order
            ],
            "net_amount": [10.0, 5.0, 20.0, 99.0, 50.0],
            "status": ["completed", "completed", "completed", "completed", "cancelled"],
        }
    )
    con.execute(
        "insert into staging.orders by name select *, 'EUR' as currency, 'web' as channel from rows"
    )
    out = customer_summary(con, dt.date(2024, 1, 10))
    assert out["customer_id"].to_list() == ["x"]
    row = out.row(0, named=True)
    assert row["order_count"] == 3
    assert row["order_days"] == 2
    assert row["frequency"] == 1
    assert row["recency_days"] == 9
    assert row["T_days"] == 9
    assert row["total_spend"] == 35.0
    assert row["monetary_value"] == 20.0  # first day (10 + 5) dropped


@pytest.mark.parametrize("seed", [3, 4])
def test_calibration_holdout(con, seed):
    from lifetimes.utils import calibration_and_holdout_data

    orders = random_orders(seed)
    load(con, orders)
    cal_end, as_of = dt.date(2023, 9, 30), dt.date(2024, 2, 29)
    ours = calibration_holdout(con, cal_end, as_of).sort("customer_id")

    # The calibration part is the plain summary observed up to calibration_end.
    cal = customer_summary(con, cal_end).sort("customer_id")
    assert ours["customer_id"].to_list() == cal["customer_id"].to_list()
    for col in ("frequency", "recency_days", "T_days"):
        assert ours[col].to_list() == cal[col].to_list(), col
    np.testing.assert_allclose(ours["monetary_value"], cal["monetary_value"], rtol=1e-12)

    # lifetimes compares raw timestamps with the cutoffs, so a cutoff at midnight would send the
    # rest of that day to the holdout; pass the last microsecond of the day to get day semantics.
    end_of = lambda d: pd.Timestamp(d) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)  # noqa: E731
    tx = orders.filter(pl.col("status") == "completed").to_pandas()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = calibration_and_holdout_data(
            tx,
            "customer_id",
            "ordered_at",
            calibration_period_end=end_of(cal_end),
            observation_period_end=end_of(as_of),
            freq="D",
            monetary_value_col="net_amount",
        ).sort_index()
    assert ours["customer_id"].to_list() == ref.index.to_list()
    np.testing.assert_array_equal(ours["holdout_purchases"], ref["frequency_holdout"])
    np.testing.assert_array_equal(ours["frequency"], ref["frequency_cal"])
    np.testing.assert_array_equal(ours["T_days"], ref["T_cal"])
    assert (ours["holdout_days"] == (as_of - cal_end).days).all()
    assert ref["duration_holdout"].iloc[0] == (as_of - cal_end).days


def test_spend_is_converted_into_the_reporting_currency_and_unrated_orders_left_out():
    con = duckdb.connect()
    con.execute(ORDERS_DDL)
    con.execute(
        "insert into staging.orders (order_id, customer_id, ordered_at, net_amount, currency, "
        "status) values "
        "('1', 'x', '2024-01-01', 10, 'USD', 'completed'), "
        "('2', 'x', '2024-01-02', 10, 'GBP', 'completed'), "
        "('3', 'x', '2024-01-03', 10, 'JPY', 'completed'), "
        "('4', 'y', '2024-01-03', 10, 'JPY', 'completed')"
    )
    out = customer_summary(con, dt.date(2024, 1, 10), currency="USD", fx_rates={"GBP": 1.25})
    assert out.select("customer_id", "order_count", "total_spend").rows() == [("x", 2, 22.5)]
    mixed = customer_summary(con, dt.date(2024, 1, 10)).sort("customer_id")
    assert mixed["total_spend"].to_list() == [30.0, 10.0]  # no currency given: taken as is
