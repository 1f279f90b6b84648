-- One row per identifying value seen in a staged source, with the customer it resolves to.
--
-- Keys and normalisation
--   customer_id  as staged (exact match against staging.customers)
--   email        trim + lower case
--   handle       each ';'-separated entry of customers.social_handles, trimmed, lower-cased,
--                leading '@' removed (the same normalisation is applied to social handles)
-- Ownership (deterministic): when several customers share a normalised email or handle, the
--   customer with the earliest signup_date owns it, ties broken by the smallest customer_id.
-- Resolution per source (first rule that matches wins; otherwise customer_id is NULL and the row
--   is kept, match_rule NULL):
--   customers  role customer -> itself; role email / handle -> the owner (differs from the row's
--              customer_id when two profiles share an email or handle: a duplicate profile)
--   orders     role buyer    -> customer_id if known to customers, else email
--   reviews    role author   -> customer_id if known to customers, else email
--   social     role actor    -> actor_handle; role target -> target_handle (rows with a target
--              handle only: a post id alone cannot be attributed without a posts export)
--   referrals  role referrer -> referrer_customer_id if known;
--              role referee  -> referee_customer_id if known, else referee_email
create or replace table intermediate.identity_links as
with
customers as (
    select customer_id, email, social_handles, signup_date
    from staging.customers
),

customer_emails as (
    select
        customer_id,
        signup_date,
        email as raw_value,
        lower(trim(email)) as normalized_value
    from customers
    where email is not null and trim(email) <> ''
),

email_owners as materialized (
    select normalized_value, customer_id
    from customer_emails
    qualify row_number() over (
        partition by normalized_value order by signup_date asc nulls last, customer_id asc
    ) = 1
),

customer_handles_split as (
    select
        customer_id,
        signup_date,
        unnest(string_split(social_handles, ';')) as raw_value
    from customers
    where social_handles is not null
),

customer_handles as (
    select distinct
        customer_id,
        signup_date,
        trim(raw_value) as raw_value,
        ltrim(lower(trim(raw_value)), '@') as normalized_value
    from customer_handles_split
    where ltrim(lower(trim(raw_value)), '@') <> ''
),

handle_owners as materialized (
    select normalized_value, customer_id
    from customer_handles
    qualify row_number() over (
        partition by normalized_value order by signup_date asc nulls last, customer_id asc
    ) = 1
),

known_ids as materialized (
    select distinct customer_id from customers
),

customer_links as (
    select
        'customers' as source, 'customer' as role, customer_id as source_key,
        customer_id as raw_value, customer_id as normalized_value,
        'customer_id' as match_rule, customer_id
    from known_ids
    union all
    select
        'customers', 'email', e.customer_id, e.raw_value, e.normalized_value,
        'email', o.customer_id
    from customer_emails as e
    join email_owners as o using (normalized_value)
    union all
    select
        'customers', 'handle', h.customer_id, h.raw_value, h.normalized_value,
        'handle', o.customer_id
    from customer_handles as h
    join handle_owners as o using (normalized_value)
),

orders_keyed as (
    select
        o.order_id,
        o.customer_id as raw_id,
        o.email as raw_email,
        lower(trim(o.email)) as email_norm,
        k.customer_id as id_match,
        eo.customer_id as email_match
    from staging.orders as o
    left join known_ids as k on k.customer_id = o.customer_id
    left join email_owners as eo on eo.normalized_value = lower(trim(o.email))
),

order_links as (
    select
        'orders' as source, 'buyer' as role, order_id as source_key,
        case when id_match is null and email_match is not null then raw_email else raw_id end,
        case when id_match is null and email_match is not null then email_norm else raw_id end,
        case
            when id_match is not null then 'customer_id'
            when email_match is not null then 'email'
        end,
        coalesce(id_match, email_match)
    from orders_keyed
),

reviews_keyed as (
    select
        r.review_id,
        r.customer_id as raw_id,
        r.email as raw_email,
        lower(trim(r.email)) as email_norm,
        k.customer_id as id_match,
        eo.customer_id as email_match
    from staging.reviews as r
    left join known_ids as k on k.customer_id = r.customer_id
    left join email_owners as eo on eo.normalized_value = lower(trim(r.email))
),

review_links as (
    select
        'reviews' as source, 'author' as role, review_id as source_key,
        case when id_match is null and raw_email is not null then raw_email else raw_id end,
        case when id_match is null and raw_email is not null then email_norm else raw_id end,
        case
            when id_match is not null then 'customer_id'
            when email_match is not null then 'email'
        end,
        coalesce(id_match, email_match)
    from reviews_keyed
),

social_actor_links as (
    select
        'social' as source, 'actor' as role, s.event_id as source_key,
        s.actor_handle, ltrim(lower(trim(s.actor_handle)), '@'),
        case when ho.customer_id is not null then 'handle' end,
        ho.customer_id
    from staging.social as s
    left join handle_owners as ho
        on ho.normalized_value = ltrim(lower(trim(s.actor_handle)), '@')
),

social_target_links as (
    select
        'social' as source, 'target' as role, s.event_id as source_key,
        s.target_handle, ltrim(lower(trim(s.target_handle)), '@'),
        case when ho.customer_id is not null then 'handle' end,
        ho.customer_id
    from staging.social as s
    left join handle_owners as ho
        on ho.normalized_value = ltrim(lower(trim(s.target_handle)), '@')
    where s.target_handle is not null
),

referrer_links as (
    select
        'referrals' as source, 'referrer' as role, r.referral_id as source_key,
        r.referrer_customer_id, r.referrer_customer_id,
        case when k.customer_id is not null then 'customer_id' end,
        k.customer_id
    from staging.referrals as r
    left join known_ids as k on k.customer_id = r.referrer_customer_id
),

referees_keyed as (
    select
        r.referral_id,
        r.referee_customer_id as raw_id,
        r.referee_email as raw_email,
        lower(trim(r.referee_email)) as email_norm,
        k.customer_id as id_match,
        eo.customer_id as email_match
    from staging.referrals as r
    left join known_ids as k on k.customer_id = r.referee_customer_id
    left join email_owners as eo on eo.normalized_value = lower(trim(r.referee_email))
),

referee_links as (
    select
        'referrals' as source, 'referee' as role, referral_id as source_key,
        case when id_match is null and raw_email is not null then raw_email else raw_id end,
        case when id_match is null and raw_email is not null then email_norm else raw_id end,
        case
            when id_match is not null then 'customer_id'
            when email_match is not null then 'email'
        end,
        coalesce(id_match, email_match)
    from referees_keyed
)

select * from customer_links
union all select * from order_links
union all select * from review_links
union all select * from social_actor_links
union all select * from social_target_links
union all select * from referrer_links
union all select * from referee_links
