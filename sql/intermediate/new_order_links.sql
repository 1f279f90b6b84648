-- The identity links of the orders staged from new files only (the incremental path of
-- engagement_box/identity/links.py::refresh_identity_links): identity_links_sources.sql's
-- orders/buyer links, applied to the new rows. One row per link, with the new rows carrying it.
-- For this connection only. Parameters: $new_files (VARCHAR[]: staged source_file values).
create or replace temp table new_order_links as
with
ids as (select * from intermediate.customer_keys('customer')),

emails as (select * from intermediate.customer_keys('email')),

pairs as (
    select
        customer_id as raw_id,
        intermediate.normalized_email(email) as email_key,
        count(*) as n
    from staging.orders
    where list_contains(cast($new_files as varchar[]), source_file)
    group by customer_id, email
)

select
    'orders' as source,
    'buyer' as role,
    intermediate.id_else_email_key_type(i.customer_id, p.email_key) as key_type,
    intermediate.id_else_email_key(i.customer_id, p.email_key, p.raw_id) as normalized_value,
    intermediate.id_else_email_customer(i.customer_id, e.customer_id) as customer_id,
    intermediate.id_else_email_rule(i.customer_id, e.customer_id) as match_rule,
    sum(p.n)::bigint as source_rows
from pairs as p
left join ids as i on i.normalized_value = p.raw_id
left join emails as e on e.normalized_value = p.email_key
group by all
