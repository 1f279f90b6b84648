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
-- Parameters: $fx_currencies / $fx_rates (lists, or NULL for single-currency data; the
--             conversion rule is in create_currency_macros.sql), $as_of (DATE, observation
--             end, inclusive: orders on that day count), $start (DATE or NULL: orders before
--             this day are ignored).
-- first_order_date / last_order_date are the days of the first and last completed order (the
-- models work in whole days; carrying timestamps through the per-day aggregate cost 15 % more).
-- Rows come in no particular order (sorting 1M ids costs more than it is worth here): sort
-- downstream when order matters. The day filters compare ordered_at with day boundaries instead
-- of casting every row (same rows: ordered_at < as_of + 1 day <=> day(ordered_at) <= as_of).
with orders as (
    -- Each order with its one customer: through the identity links, the
    -- buyer_id of intermediate.orders_resolution (the resolved customer, else the staged id); in
    -- a database with staged orders only, staging.orders' own customer_id (engagement_box/value/
    -- summary.py chooses).
    select {customer_column} as customer_id, ordered_at, net_amount, currency, status
    from {orders_schema}.{orders_table}
),

daily as (
    -- One row per customer and order day, with only a count and a sum: the widest aggregate of
    -- the query (about one group per order), so it carries no timestamps.
    select
        o.customer_id,
        cast(o.ordered_at as date) as order_day,
        count(*) as orders,
        sum(
            reporting_amount(o.net_amount, o.currency, r.rate, $fx_currencies, $fx_rates)
        ) as day_spend
    from orders as o
    -- the latest dated rate of the order's currency on or before its day (or none)
    left join reporting_rates as r
        on o.currency = r.currency and cast(o.ordered_at as date) = r.day
    where o.status = 'completed'
        -- orders in a currency with no rate are left out (counted by the caller)
        and has_reporting_rate(o.currency, r.rate, $fx_currencies)
        and o.ordered_at < cast($as_of as date) + 1
        and ($start is null or o.ordered_at >= cast($start as date))
    group by o.customer_id, order_day
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
