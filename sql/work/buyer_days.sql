-- Completed orders per customer and order day, in the reporting currency: the one pass over the
-- orders that the customer summary, the calibration/holdout split and the cohort retention
-- (customer_summary.sql, calibration_holdout.sql, cohort_retention.sql) all read. It holds every
-- day of the staged orders, so it does not depend on the as-of: each summary keeps the days it
-- needs. The caller writes it to work.buyer_days (engagement_box/value/summary.py).
--   customer_id = the order's one customer: through the identity links, the buyer_id of
--                 intermediate.orders_resolution (the resolved customer, else the staged id); in
--                 a database with staged orders only, staging.orders' own customer_id;
--   order_day   = the calendar day of ordered_at;
--   orders      = completed orders that day (order_id is the staged key, unique after ingestion);
--   day_spend   = their amounts in the reporting currency, each converted at its own rate (the
--                 rule is in create_currency_macros.sql), summed exactly in DECIMAL.
-- Orders in a currency with no rate are left out (counted by orders_without_rate.sql).
-- Parameters: $fx_currencies / $fx_rates (lists, or NULL for single-currency data).
with orders as (
    select {customer_column} as customer_id, ordered_at, net_amount, currency, status
    from {orders_schema}.{orders_table}
)

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
    and has_reporting_rate(o.currency, r.rate, $fx_currencies)
group by o.customer_id, order_day
