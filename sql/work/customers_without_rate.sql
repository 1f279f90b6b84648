-- The customers with a completed order up to the as-of date that every value model leaves out
-- for want of an FX rate into the reporting currency (the orders orders_without_rate.sql counts
-- per currency, here per customer): customer_id and orders_left_out. The customer is the
-- resolved one of buyer_days.sql ({customer_column} of {orders_schema}.{orders_table}). A
-- customer here with no row in the customer summary has no completed order the models value:
-- no RFM segment, and never a prospect (engagement_box/value/rfm.py::score_rfm's `left_out`).
-- Run by both engines (the Spark engine transpiles it); the rule is create_currency_macros.sql's.
-- Parameters: $as_of (DATE), $fx_currencies (list, or NULL for single-currency data).
with orders as (
    select {customer_column} as customer_id, ordered_at, currency, status
    from {orders_schema}.{orders_table}
)

select o.customer_id, count(*) as orders_left_out
from orders as o
left join reporting_rates as r
    on o.currency = r.currency and cast(o.ordered_at as date) = r.day
where o.status = 'completed'
    and o.ordered_at < cast($as_of as date) + 1
    and not has_reporting_rate(o.currency, r.rate, cast($fx_currencies as varchar[]))
group by o.customer_id
order by o.customer_id
