-- The identity links, first part: the customer keys (the dictionary every other source resolves
-- against). One row per (source, role, distinct normalised value); the rows of the other sources
-- are appended by identity_links_sources.sql.
--
-- Columns
--   source, role      where the value was seen: customers/customer|email|handle, orders/buyer,
--                     reviews/author, social/actor|target, referrals/referrer|referee
--   key_type          'customer_id' | 'email' | 'handle': what kind of value normalized_value is
--   normalized_value  the key after normalisation (NULL when the source row had no key at all)
--   customer_id       the customer it resolves to (NULL: unresolved, the rows are kept)
--   match_rule        the rule that resolved it ('customer_id' | 'email' | 'handle'), NULL if none
--   source_rows       how many rows of the source carry this value in this role (for customers:
--                     how many profiles; > 1 on an email or handle means duplicate profiles)
--
-- Keys and normalisation: sql/intermediate/normalization.sql (normalized_email, normalized_handle); handles
--   are each ';'-separated entry of customers.social_handles.
-- Ownership: every key resolves to the person (intermediate.customer_merge), not to one profile:
--   a staged customer_id to the person its profile was merged into, an email or handle to the
--   person of the profiles carrying it (profiles sharing a key are always one person).
-- Placeholders: an email or handle carried by more than $max_profiles_per_key profiles
--   (ENGAGEMENT_MAX_PROFILES_PER_KEY) merged no profiles (customer_merge_edges.sql) and resolves
--   nothing: its row has customer_id and match_rule NULL, and source_rows says how many profiles
--   carry it. Orders, reviews, events and referrals carrying it resolve by their other keys only.
--   A key that is a placeholder only with its erased carriers counted (the temporary table of
--   erased_placeholder_keys.sql) resolves nothing either.
insert into intermediate.identity_links
    (source, role, key_type, normalized_value, customer_id, match_rule, source_rows)
with
customers as not materialized (
    select c.customer_id, c.email, c.social_handles, m.resolved_customer_id
    from staging.customers as c
    inner join intermediate.customer_merge as m on m.customer_id = c.customer_id
),

customer_handles as (
    -- A profile listing the same handle twice counts once.
    select distinct
        customer_id,
        resolved_customer_id,
        unnest(string_split(social_handles, ';')) as raw_value
    from customers
    where social_handles is not null
),

email_counts as (
    select
        intermediate.normalized_email(email) as normalized_value,
        count(distinct customer_id) as profiles,
        -- one person per key: min() only names the value all the rows share
        min(resolved_customer_id) as person,
        count(*) as source_rows
    from customers
    group by 1
    having normalized_value is not null
),

email_links as (
    select
        c.normalized_value,
        case when c.profiles <= $max_profiles_per_key and e.key is null then c.person end
            as customer_id,
        c.source_rows
    from email_counts as c
    left join erased_placeholder_keys as e
        on e.key_type = 'email' and e.key = c.normalized_value
),

handle_counts as (
    select
        intermediate.normalized_handle(raw_value) as normalized_value,
        count(distinct customer_id) as profiles,
        min(resolved_customer_id) as person
    from customer_handles
    group by 1
    having normalized_value is not null
),

handle_links as (
    select
        c.normalized_value,
        case when c.profiles <= $max_profiles_per_key and e.key is null then c.person end
            as customer_id,
        c.profiles as source_rows
    from handle_counts as c
    left join erased_placeholder_keys as e
        on e.key_type = 'handle' and e.key = c.normalized_value
),

id_links as (
    select
        customer_id as normalized_value,
        min(resolved_customer_id) as customer_id,
        count(*) as source_rows
    from customers
    where customer_id is not null
    group by customer_id
)

select
    'customers' as source, 'customer' as role, 'customer_id' as key_type, normalized_value,
    customer_id, 'customer_id' as match_rule, source_rows
from id_links
union all
select
    'customers', 'email', 'email', normalized_value, customer_id,
    intermediate.matched_rule(customer_id, 'email'), source_rows
from email_links
union all
select
    'customers', 'handle', 'handle', normalized_value, customer_id,
    intermediate.matched_rule(customer_id, 'handle'), source_rows
from handle_links
