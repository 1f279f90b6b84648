-- Each staged review with its resolved author, computed on read (a view: nothing per row is
-- stored). Rule: customer_id if known to staging.customers, else the normalised email's owner;
-- otherwise unresolved. key_type / key: as in orders_resolution.
create or replace view intermediate.reviews_resolution as
with
reviews as (
    select
        review_id,
        customer_id as raw_id,
        nullif(lower(trim(email)), '') as email_key,
        product_id,
        rating,
        helpful_votes,
        verified_purchase,
        created_at
    from staging.reviews
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
    r.review_id,
    coalesce(i.customer_id, e.customer_id) as customer_id,
    case
        when i.customer_id is not null then 'customer_id'
        when e.customer_id is not null then 'email'
    end as match_rule,
    case
        when i.customer_id is null and r.email_key is not null then 'email' else 'customer_id'
    end as key_type,
    case
        when i.customer_id is null and r.email_key is not null then r.email_key else r.raw_id
    end as key,
    r.product_id,
    r.rating,
    r.helpful_votes,
    r.verified_purchase,
    r.created_at
from reviews as r
left join ids as i on i.normalized_value = r.raw_id
left join emails as e on e.normalized_value = r.email_key
