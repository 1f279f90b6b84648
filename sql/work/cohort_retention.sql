-- Cohort retention as of $as_of: customers by the month of their first completed order (the
-- cohort) and, for each calendar month since, how many of them ordered, their orders and revenue
-- in the reporting currency. One row per cohort month and month since the first order, from 0 up
-- to the as-of month (months without activity included, with zeros), so a cohort's row count is
-- its age in months + 1. Same orders as customer_summary.sql: completed, up to the end of the
-- as-of day, the resolved customer, orders in a currency with no rate left out.
-- Parameters: $fx_currencies / $fx_rates (see create_currency_macros.sql), $as_of (DATE).
with orders as (
    select {customer_column} as customer_id, ordered_at, net_amount, currency, status
    from {orders_schema}.{orders_table}
),

completed as (
    select
        o.customer_id,
        cast(date_trunc('month', o.ordered_at) as date) as order_month,
        reporting_amount(o.net_amount, o.currency, r.rate, $fx_currencies, $fx_rates) as amount
    from orders as o
    -- the latest dated rate of the order's currency on or before its day (or none)
    left join reporting_rates as r
        on o.currency = r.currency and cast(o.ordered_at as date) = r.day
    where o.status = 'completed'
        and has_reporting_rate(o.currency, r.rate, $fx_currencies)
        and o.ordered_at < cast($as_of as date) + 1
),

cohorts as (
    select customer_id, min(order_month) as cohort_month
    from completed
    group by customer_id
),

sizes as (
    select cohort_month, count(*) as cohort_customers
    from cohorts
    group by cohort_month
),

grid as (
    -- every month from the cohort's first to the as-of month
    select
        cohort_month,
        cohort_customers,
        unnest(
            range(
                0,
                date_diff('month', cohort_month, cast(date_trunc('month', cast($as_of as date)) as date))
                + 1
            )
        ) as months_since_first_order
    from sizes
),

activity as (
    select
        k.cohort_month,
        date_diff('month', k.cohort_month, c.order_month) as months_since_first_order,
        count(distinct c.customer_id) as active_customers,
        count(*) as orders,
        sum(c.amount) as revenue
    from completed as c
    inner join cohorts as k using (customer_id)
    group by all
)

select
    g.cohort_month,
    cast(g.months_since_first_order as integer) as months_since_first_order,
    g.cohort_customers,
    coalesce(a.active_customers, 0) as active_customers,
    coalesce(a.orders, 0) as orders,
    cast(coalesce(a.revenue, 0) as double) as revenue,
    coalesce(a.active_customers, 0) / g.cohort_customers as retention_share
from grid as g
left join activity as a
    on g.cohort_month = a.cohort_month
    and g.months_since_first_order = a.months_since_first_order
order by g.cohort_month, g.months_since_first_order
