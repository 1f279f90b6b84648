-- The emails and handles that are placeholders only because erased profiles carried them too:
-- carried by at most $max_profiles_per_key staged profiles (ENGAGEMENT_MAX_PROFILES_PER_KEY),
-- but by more once the erased profiles that carried them are counted (staging.erased_profile_keys,
-- keyed by sha256($salt || '<kind>:<normalised value>'), the erasure log's hash). Without this, erasing
-- one of six profiles on a till's address left five, and the next build merged the five
-- strangers. customer_merge_edges.sql and identity_links.sql treat these keys as placeholders,
-- as erasure/placeholder_keys.sql does. Only keys near the limit are hashed: a key needs more
-- than (limit - the most carriers erased on one key) staged profiles to tip. A temporary table:
-- the connection's own. Portable: the Spark engine runs this same file.
create or replace temp table erased_placeholder_keys as
with
erased as (
    select kind as key_type, key_hash, count(distinct profile_hash) as carriers
    from staging.erased_profile_keys
    group by kind, key_hash
),

reach as (
    select coalesce(max(carriers), 0) as most from erased
),

profile_keys as (
    select 'email' as key_type, intermediate.normalized_email(email) as key, customer_id
    from staging.customers
    where customer_id is not null
    union
    select 'handle', intermediate.normalized_handle(raw_value), customer_id
    from (
        select customer_id, unnest(string_split(social_handles, ';')) as raw_value
        from staging.customers
        where social_handles is not null and customer_id is not null
    )
),

near_limit as (
    select p.key_type, p.key, count(distinct p.customer_id) as profiles
    from profile_keys as p
    cross join reach as r
    where p.key is not null
    group by p.key_type, p.key, r.most
    having
        count(distinct p.customer_id) <= $max_profiles_per_key
        and count(distinct p.customer_id) > $max_profiles_per_key - r.most
)

select n.key_type, n.key
from near_limit as n
inner join erased as e
    on e.key_type = n.key_type and e.key_hash = sha256($salt || n.key_type || ':' || n.key)
where n.profiles + e.carriers > $max_profiles_per_key
