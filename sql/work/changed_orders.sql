-- Every order of the changed customers (changed_customers.sql) with its buyer_id, as
-- sql/intermediate/orders_resolution.sql resolves it: what the summaries read to recompute those
-- customers alone. The rule applied to fewer rows: an order whose staged id is a customer's
-- resolves by that id, so only the orders of the changed customers' own ids are read; the
-- others (ids no profile has) resolve by email, else keep their staged id, and only their emails
-- are normalised (the view normalises every order's). For this connection only.
create or replace temp table changed_orders as
with ids as (
    select normalized_value, customer_id from intermediate.customer_keys('customer')
),

by_id as (
    select
        o.order_id,
        i.customer_id as buyer_id,
        o.ordered_at,
        o.net_amount,
        o.currency,
        o.status
    from staging.orders as o
    inner join ids as i on i.normalized_value = o.customer_id
    where i.customer_id in (select c.customer_id from changed_customers as c)
),

others as (
    select
        o.order_id,
        coalesce(intermediate.id_else_email_customer(null, e.customer_id), o.customer_id)
            as buyer_id,
        o.ordered_at,
        o.net_amount,
        o.currency,
        o.status
    from staging.orders as o
    anti join ids as i on i.normalized_value = o.customer_id
    left join intermediate.customer_keys('email') as e
        on e.normalized_value = intermediate.normalized_email(o.email)
)

select * from by_id
union all
select * from others
where buyer_id in (select c.customer_id from changed_customers as c)
