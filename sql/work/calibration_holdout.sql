-- Calibration / holdout split for validating the purchase model. For every customer whose first
-- completed order falls in the calibration period [$start, $calibration_end]: the calibration
-- summary (same definitions as work/customer_summary.sql, observed up to $calibration_end
-- inclusive) and the holdout repeat purchases, i.e. distinct order days in
-- ($calibration_end, $as_of], with the holdout length in days.
-- Reads the orders per customer and day of buyer_days.sql ({days_schema}.{days_table}, see
-- customer_summary.sql). Parameters: $calibration_end (DATE), $as_of (DATE, inclusive),
-- $start (DATE or NULL).
with daily as (
    -- One row per customer and order day (buyer_days.sql), the days up to the as-of only.
    select customer_id, order_day, day_spend
    from {days_schema}.{days_table}
    where order_day <= cast($as_of as date)
        and (cast($start as date) is null or order_day >= cast($start as date))
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
