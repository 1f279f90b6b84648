-- Cohort retention as of $as_of: customers by the month of their first completed order (the
-- cohort) and, for each calendar month since, how many of them ordered, their orders and revenue
-- in the reporting currency. One row per cohort month and month since the first order, from 0 up
-- to the as-of month (months without activity included, with zeros), so a cohort's row count is
-- its age in months + 1. Same orders as customer_summary.sql: completed, up to the end of the
-- as-of day, the resolved customer, orders in a currency with no rate left out: it reads the
-- orders per customer and day of buyer_days.sql ({days_schema}.{days_table}, see
-- customer_summary.sql). Parameters: $as_of (DATE).
with completed as (
    -- One row per customer and order month (from buyer_days.sql's rows per customer and day), the
    -- days up to the as-of only: the months below count each customer once without a distinct.
    select
        customer_id,
        cast(date_trunc('month', order_day) as date) as order_month,
        sum(orders) as orders,
        sum(day_spend) as day_spend
    from {days_schema}.{days_table}
    where order_day <= cast($as_of as date)
    group by all
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
        count(*) as active_customers,
        cast(sum(c.orders) as bigint) as orders,
        sum(c.day_spend) as revenue
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
