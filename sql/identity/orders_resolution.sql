-- Each staged order with its resolved buyer, computed on read (a view: nothing per row is stored).
-- Rule: customer_id if known to staging.customers, else the normalised email's owner; otherwise
-- unresolved (customer_id NULL). key_type / key: the value that decided (for an unresolved row,
-- the email when there is one, else the staged customer_id).
create or replace view intermediate.orders_resolution as
with
orders as (
    select
        order_id,
        customer_id as raw_id,
        nullif(lower(trim(email)), '') as email_key,
        ordered_at,
        net_amount,
        currency,
        status,
        channel
    from staging.orders
),

ids as (
    select normalized_value, customer_id
    from intermediate.identity_links
    where source = 'customers' and role = 'customer'
),

emails as (
    select normalized_value, customer_id
    from intermediate.identity_links
    where source = 'customers' and role = 'email'
)

select
    o.order_id,
    coalesce(i.customer_id, e.customer_id) as customer_id,
    case
        when i.customer_id is not null then 'customer_id'
        when e.customer_id is not null then 'email'
    end as match_rule,
    case
        when i.customer_id is null and o.email_key is not null then 'email' else 'customer_id'
    end as key_type,
    case
        when i.customer_id is null and o.email_key is not null then o.email_key else o.raw_id
    end as key,
    o.ordered_at,
    o.net_amount,
    o.currency,
    o.status,
    o.channel
from orders as o
left join ids as i on i.normalized_value = o.raw_id
left join emails as e on e.normalized_value = o.email_key
