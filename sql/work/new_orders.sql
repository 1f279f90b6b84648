-- The orders staged from new files (the incremental path of work.buyer_days,
-- engagement_box/value/summary.py::refresh_buyer_days), each with its buyer_id as
-- sql/intermediate/orders_resolution.sql resolves it: by the staged id when a customer has it,
-- else by the normalised email's owner, else the staged id. Only these rows are resolved (the
-- view would resolve every order). For this connection only.
-- Parameters: $new_files (VARCHAR[]: staged source_file values).
create or replace temp table new_orders as
select
    coalesce(intermediate.id_else_email_customer(i.customer_id, e.customer_id), o.customer_id)
        as buyer_id,
    o.ordered_at,
    o.net_amount,
    o.currency,
    o.status
from staging.orders as o
left join intermediate.customer_keys('customer') as i on i.normalized_value = o.customer_id
left join intermediate.customer_keys('email') as e
    on e.normalized_value = intermediate.normalized_email(o.email)
where list_contains(cast($new_files as varchar[]), o.source_file)
