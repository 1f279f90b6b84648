-- The identity links, second part: one row per (source, role, key_type, normalised value,
-- resolved customer) of the event sources, with the number of source rows carrying it
-- (source_rows). Social targets: rows with a target_handle only.
--
-- The rules are the macros of sql/intermediate/rules.sql, as in the *_resolution views (the per-row
-- resolution the metrics read); this statement applies them to the distinct raw values instead of
-- to every row (group first, then normalise and look up), which gives the same counts at a
-- fraction of the cost. A test holds the two to the same counts.
insert into intermediate.identity_links
    (source, role, key_type, normalized_value, customer_id, match_rule, source_rows)
with
ids as (select * from intermediate.customer_keys('customer')),

emails as (select * from intermediate.customer_keys('email')),

handles as (select * from intermediate.customer_keys('handle')),

-- customer_id-else-email sources: the distinct (raw id, raw email) pairs and their row counts
id_email_pairs as (
    select 'orders' as source, 'buyer' as role, customer_id as raw_id, email as raw_email,
        count(*) as n
    from staging.orders
    group by all
    union all
    select 'reviews', 'author', customer_id, email, count(*)
    from staging.reviews
    group by all
    union all
    select 'referrals', 'referee', referee_customer_id, referee_email, count(*)
    from staging.referrals
    group by all
),

id_email_keyed as (
    select
        p.source,
        p.role,
        p.raw_id,
        intermediate.normalized_email(p.raw_email) as email_key,
        p.n
    from id_email_pairs as p
),

id_email_links as (
    select
        k.source,
        k.role,
        intermediate.id_else_email_key_type(i.customer_id, k.email_key) as key_type,
        intermediate.id_else_email_key(i.customer_id, k.email_key, k.raw_id) as normalized_value,
        intermediate.id_else_email_customer(i.customer_id, e.customer_id) as customer_id,
        intermediate.id_else_email_rule(i.customer_id, e.customer_id) as match_rule,
        k.n
    from id_email_keyed as k
    left join ids as i on i.normalized_value = k.raw_id
    -- the email's owner only counts when the id finds no customer
    left join emails as e
        on e.normalized_value = case when i.customer_id is null then k.email_key end
),

-- handle sources: the distinct raw handles per role
raw_handles as (
    select 'actor' as role, actor_handle as raw_handle, count(*) as n
    from staging.social
    group by all
    union all
    select 'target', target_handle, count(*)
    from staging.social
    where target_handle is not null
    group by all
),

handle_keyed as (
    select role, intermediate.normalized_handle(raw_handle) as handle_key, n
    from raw_handles
),

handle_source_links as (
    select
        'social' as source,
        k.role,
        'handle' as key_type,
        k.handle_key as normalized_value,
        h.customer_id,
        intermediate.matched_rule(h.customer_id, 'handle') as match_rule,
        k.n
    from handle_keyed as k
    left join handles as h on h.normalized_value = k.handle_key
),

referrer_links as (
    select
        'referrals' as source,
        'referrer' as role,
        'customer_id' as key_type,
        r.referrer_customer_id as normalized_value,
        i.customer_id,
        intermediate.matched_rule(i.customer_id, 'customer_id') as match_rule,
        count(*) as n
    from staging.referrals as r
    left join ids as i on i.normalized_value = r.referrer_customer_id
    group by all
),

all_links as (
    select * from id_email_links
    union all
    select * from handle_source_links
    union all
    select * from referrer_links
)

select source, role, key_type, normalized_value, customer_id, match_rule, sum(n)::bigint
from all_links
group by all
