-- The customers whose order summaries change since an earlier run (engagement_box/incremental.py):
-- the buyers of every order staged from a new file, and of every order placed on a day that moved
-- into the summaries' windows. A customer is the identity-resolved buyer: the buyer_id of
-- sql/intermediate/orders_resolution.sql, computed here for these orders only (the view would
-- resolve every order). For this connection only.
-- Parameters: $new_files (VARCHAR[]: staged source_file values); $after_1 / $until_1 and
-- $after_2 / $until_2 (DATE): two windows of days, each after `after` up to and including `until`
-- (an empty window when they are equal).
create or replace temp table changed_customers as
with changed as (
    -- Three plain filters, not one OR: each is pushed into the scan, where the row groups'
    -- min/max statistics skip the staged orders of other files and days (about 0.2 against 1.9
    -- CPU-s on 10M staged orders). An order in two branches counts once (distinct below).
    select o.customer_id as raw_id, intermediate.normalized_email(o.email) as email_key
    from staging.orders as o
    where o.source_file in (select unnest(cast($new_files as varchar[])))
    union all
    select o.customer_id, intermediate.normalized_email(o.email)
    from staging.orders as o
    where o.ordered_at >= cast($after_1 as date) + 1 and o.ordered_at < cast($until_1 as date) + 1
    union all
    select o.customer_id, intermediate.normalized_email(o.email)
    from staging.orders as o
    where o.ordered_at >= cast($after_2 as date) + 1 and o.ordered_at < cast($until_2 as date) + 1
)

select distinct
    coalesce(intermediate.id_else_email_customer(i.customer_id, e.customer_id), c.raw_id)
        as customer_id
from changed as c
left join intermediate.customer_keys('customer') as i on i.normalized_value = c.raw_id
left join intermediate.customer_keys('email') as e
    on e.normalized_value = case when i.customer_id is null then c.email_key end
