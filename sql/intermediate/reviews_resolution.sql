-- Each staged review with its resolved author, computed on read (a view: nothing per row is
-- stored). Rule (sql/intermediate/rules.sql): customer_id if known to staging.customers, else the
-- normalised email's owner; otherwise unresolved. key_type / key: as in orders_resolution.
create or replace view intermediate.reviews_resolution as
with
reviews as (
    select
        review_id,
        customer_id as raw_id,
        email,
        intermediate.normalized_email(email) as email_key,
        product_id,
        rating,
        helpful_votes,
        verified_purchase,
        created_at
    from staging.reviews
)

select
    r.review_id,
    intermediate.id_else_email_customer(i.customer_id, e.customer_id) as customer_id,
    intermediate.id_else_email_rule(i.customer_id, e.customer_id) as match_rule,
    intermediate.id_else_email_key_type(i.customer_id, r.email_key) as key_type,
    intermediate.id_else_email_key(i.customer_id, r.email_key, r.raw_id) as key,
    r.product_id,
    r.rating,
    r.helpful_votes,
    r.verified_purchase,
    r.created_at
from reviews as r
left join intermediate.customer_keys('customer') as i on i.normalized_value = r.raw_id
-- the email's owner only counts when the id finds no customer (orders_resolution.sql)
left join intermediate.customer_keys('email') as e
    on e.normalized_value
    = case when i.customer_id is null then intermediate.normalized_email(r.email) end
