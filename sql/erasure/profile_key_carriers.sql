-- The emails and handles carried by more than $least staged customer profiles, each with how
-- many carry it, by hash: sha256($salt || '<kind>:<normalised value>'), as staging.erasure_log
-- and staging.erased_profile_keys keep keys. `erasure.profile_keys_erased` asks it whether a key
-- of a profile erased by its customer id is a placeholder (carried by more profiles than
-- ENGAGEMENT_MAX_PROFILES_PER_KEY once the erased ones are counted): $least is the limit less
-- the most erased profiles on one of those keys, so only keys that can tip are hashed.
-- Normalised as identity normalises them (sql/intermediate/erased_placeholder_keys.sql).
-- Portable: the Spark engine runs this same file over its staged profiles.
with
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

counted as (
    select key_type, key, count(distinct customer_id) as profiles
    from profile_keys
    where key is not null
    group by key_type, key
    having count(distinct customer_id) > $least
)

select key_type, sha256($salt || key_type || ':' || key) as key_hash, profiles
from counted
