-- Per-customer purchase summary from completed orders: the BG/NBD and Gamma-Gamma sufficient
-- statistics in days, plus the RFM inputs. Matches lifetimes'
-- summary_data_from_transaction_data(freq='D', monetary_value_col=...):
--   order day      = the calendar day of ordered_at; spend is summed per customer and day;
--   frequency      = distinct order days - 1 (repeat purchase occasions);
--   recency_days   = last order day - first order day;
--   T_days         = $as_of - first order day;
--   monetary_value = mean day spend over the repeat days (first day dropped), 0 when frequency = 0,
--                    computed as (total spend - first day spend) / frequency in one pass.
--   order_count    = completed order rows (order_id is the staged key, unique after ingestion).
-- Reads the orders per customer and day of buyer_days.sql ({days_schema}.{days_table}: the
-- stored work.buyer_days, or this connection's own; engagement_box/value/summary.py chooses), so
-- the orders are resolved to their customer and converted once for all three summaries.
-- Parameters: $as_of (DATE, observation end, inclusive: orders on that day count), $start (DATE
--             or NULL: orders before this day are ignored).
-- first_order_date / last_order_date are the days of the first and last completed order (the
-- models work in whole days; carrying timestamps through the per-day aggregate cost 15 % more).
-- Rows come in no particular order (sorting 1M ids costs more than it is worth here): sort
-- downstream when order matters.
with daily as (
    -- One row per customer and order day (buyer_days.sql: completed orders with a rate, spend in
    -- the reporting currency), the days of the window only.
    select customer_id, order_day, orders, day_spend
    from {days_schema}.{days_table}
    where order_day <= cast($as_of as date)
        and ($start is null or order_day >= cast($start as date))
),

customers as (
    select
        customer_id,
        min(order_day) as first_order_date,
        max(order_day) as last_order_date,
        sum(orders) as order_count,
        count(*) as order_days,
        sum(day_spend) as total_spend,
        arg_min(day_spend, order_day) as first_day_spend
    from daily
    group by customer_id
)

select
    customer_id,
    first_order_date,
    last_order_date,
    cast(order_count as bigint) as order_count,
    order_days,
    total_spend,
    order_days - 1 as frequency,
    date_diff('day', first_order_date, last_order_date) as recency_days,
    date_diff('day', first_order_date, cast($as_of as date)) as T_days,
    case
        when order_days > 1 then (total_spend - first_day_spend) / (order_days - 1)
        else 0.0
    end as monetary_value
from customers
