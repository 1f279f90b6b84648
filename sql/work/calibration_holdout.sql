-- Calibration / holdout split for validating the purchase model. For every customer whose first
-- completed order falls in the calibration period [$start, $calibration_end]: the calibration
-- summary (same definitions as marts/customer_summary.sql, observed up to $calibration_end
-- inclusive) and the holdout repeat purchases, i.e. distinct order days in
-- ($calibration_end, $as_of], with the holdout length in days.
-- Parameters: $fx_currencies / $fx_rates (lists, or NULL for single-currency data; the
-- conversion rule is in create_currency_macros.sql),
-- $calibration_end (DATE), $as_of (DATE, inclusive), $start (DATE or NULL).
with orders as (
    -- Each order with its one customer: through the identity links, the
    -- buyer_id of intermediate.orders_resolution (the resolved customer, else the staged id); in
    -- a database with staged orders only, staging.orders' own customer_id (engagement_box/value/
    -- summary.py chooses).
    select {customer_column} as customer_id, ordered_at, net_amount, currency, status
    from {orders_schema}.{orders_table}
),

daily as (
    select
        o.customer_id,
        cast(o.ordered_at as date) as order_day,
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
        and cast(o.ordered_at as date) <= cast($as_of as date)
        and (cast($start as date) is null or cast(o.ordered_at as date) >= cast($start as date))
    group by o.customer_id, order_day
),

customers as (
    select
        customer_id,
        count(*) filter (where order_day <= cast($calibration_end as date)) as order_days,
        sum(day_spend) filter (where order_day <= cast($calibration_end as date)) as total_spend,
        min(order_day) as first_order_day,
        max(order_day) filter (
            where order_day <= cast($calibration_end as date)
        ) as last_order_day,
        arg_min(day_spend, order_day) as first_day_spend,
        count(*) filter (where order_day > cast($calibration_end as date)) as holdout_purchases,
        coalesce(
            sum(day_spend) filter (where order_day > cast($calibration_end as date)), 0.0
        ) as holdout_spend
    from daily
    group by customer_id
)

select
    customer_id,
    order_days - 1 as frequency,
    date_diff('day', first_order_day, last_order_day) as recency_days,
    date_diff('day', first_order_day, cast($calibration_end as date)) as T_days,
    case
        when order_days > 1 then (total_spend - first_day_spend) / (order_days - 1)
        else 0.0
    end as monetary_value,
    total_spend,
    holdout_purchases,
    holdout_spend,
    date_diff('day', cast($calibration_end as date), cast($as_of as date)) as holdout_days
from customers
where first_order_day <= cast($calibration_end as date)
order by customer_id
