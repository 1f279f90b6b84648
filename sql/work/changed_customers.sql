-- The customers whose order summaries change since an earlier run (engagement_box/incremental.py):
-- the buyers of every order staged from a new file, and of every order placed on a day that moved
-- into the summaries' windows. A customer is the identity-resolved buyer, as in
-- customer_summary.sql. For this connection only.
-- Parameters: $new_files (VARCHAR[]: staged source_file values), $after / $until (DATE[] of the
-- same length: windows of days, each after `after` up to and including `until`).
create or replace temp table changed_customers as
with windows as (
    select
        unnest(cast($after as date[])) as after_day,
        unnest(cast($until as date[])) as until_day
),

changed as (
    select o.order_id
    from staging.orders as o
    where list_contains(cast($new_files as varchar[]), o.source_file)
    union
    select o.order_id
    from staging.orders as o
    inner join windows as w
        on o.ordered_at >= w.after_day + 1 and o.ordered_at < w.until_day + 1
)

select distinct r.buyer_id as customer_id
from intermediate.orders_resolution as r
where r.order_id in (select c.order_id from changed as c)
