-- Cohort retention as of $as_of from the rows of an earlier as-of $previous: the incremental path
-- of cohort_retention.sql (assets/value.py::cohort_retention), with the same rows.
-- Only new orders files arrived since $previous (engagement_box/incremental.py), and
-- $changed_month is the first day of the earliest month holding one of their orders or a day
-- after $previous. A month before it holds the same orders per customer and day as at $previous;
-- a customer's cohort can only have moved to a month on or after it (only an order before their
-- first one moves it), so such a customer has no order before it. Hence:
--   cohort sizes   from the first order day in work.customer_summary of $as_of (the same orders:
--                  completed, up to the as-of day, the resolved customer, no order without rate);
--   activity       of the months before $changed_month: $previous's rows as they are; of the
--                  months from it on: counted again from work.buyer_days, as cohort_retention.sql
--                  counts it (revenue summed exactly in DECIMAL, then a DOUBLE).
-- Parameters: $as_of, $previous, $changed_month (DATE).
with cohorts as (
    select customer_id, cast(date_trunc('month', first_order_date) as date) as cohort_month
    from work.customer_summary
    where as_of = cast($as_of as date)
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

completed as (
    -- one row per customer and order month, the recounted months only
    select
        customer_id,
        cast(date_trunc('month', order_day) as date) as order_month,
        sum(orders) as orders,
        sum(day_spend) as day_spend
    from work.buyer_days
    where order_day <= cast($as_of as date)
        and order_day >= cast($changed_month as date)
    group by all
),

recounted as (
    select
        k.cohort_month,
        date_diff('month', k.cohort_month, c.order_month) as months_since_first_order,
        count(*) as active_customers,
        cast(sum(c.orders) as bigint) as orders,
        cast(sum(c.day_spend) as double) as revenue
    from completed as c
    inner join cohorts as k using (customer_id)
    group by all
),

carried as (
    select cohort_month, months_since_first_order, active_customers, orders, revenue
    from work.cohort_retention
    where as_of = cast($previous as date)
        and active_customers > 0
        and cohort_month + to_months(months_since_first_order) < cast($changed_month as date)
),

activity as (
    select * from recounted
    union all
    select * from carried
)

select
    g.cohort_month,
    cast(g.months_since_first_order as integer) as months_since_first_order,
    g.cohort_customers,
    coalesce(a.active_customers, 0) as active_customers,
    coalesce(a.orders, 0) as orders,
    coalesce(a.revenue, 0) as revenue,
    coalesce(a.active_customers, 0) / g.cohort_customers as retention_share
from grid as g
left join activity as a
    on g.cohort_month = a.cohort_month
    and g.months_since_first_order = a.months_since_first_order
order by g.cohort_month, g.months_since_first_order
