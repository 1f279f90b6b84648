-- The customers with a completed order up to the as-of date that every value model leaves out
-- for want of an FX rate into the reporting currency (the orders orders_without_rate.sql counts
-- per currency, here per customer): customer_id and orders_left_out. The customer is the
-- resolved one of buyer_days.sql ({customer_column} of {orders_schema}.{orders_table}). A
-- customer here with no row in the customer summary has no completed order the models value:
-- no RFM segment, and never a prospect (engagement_box/value/rfm.py::score_rfm's `left_out`).
-- The orders are found on staging.orders first and only theirs are resolved: resolving every
-- order cost 1.5x as much when none is left out (the usual run: 0.14-0.18 s against 0.09-0.12
-- at 1M orders, 2026-12-07).
-- Run by both engines (the Spark engine transpiles it); the rule is create_currency_macros.sql's.
-- Parameters: $as_of (DATE), $fx_currencies (list, or NULL for single-currency data).
with left_out as (
    select o.order_id
    from staging.orders as o
    left join reporting_rates as r
        on o.currency = r.currency and cast(o.ordered_at as date) = r.day
    where o.status = 'completed'
        and o.ordered_at < cast($as_of as date) + 1
        and not has_reporting_rate(o.currency, r.rate, cast($fx_currencies as varchar[]))
)

select {customer_column} as customer_id, count(*) as orders_left_out
from {orders_schema}.{orders_table}
where order_id in (select order_id from left_out)
group by {customer_column}
order by customer_id
