-- The identity graph's edges for customer_merge.sql (which runs next, on the same connection):
-- profiles ranked in survivorship order (earliest signup_date, then smallest customer_id); two
-- profiles are linked when they carry the same normalised email or social handle (the macros of
-- sql/intermediate/rules.sql and normalization.sql). Only keys carried by two or more profiles
-- make edges, and each links its profiles to its first one (a star: 2(k - 1) edges for a key of
-- k profiles, not k^2), in both directions. A key carried by more than $max_profiles_per_key
-- profiles (ENGAGEMENT_MAX_PROFILES_PER_KEY) is a placeholder many people were given (a
-- shop's noemail@..., its own handle), not one person's: it links no profiles; so does a key
-- that is one only with its erased carriers counted (erased_placeholder_keys.sql, which runs
-- first). A temporary table of ranks only (no identifier):
-- the connection's own, gone when it closes. Portable: the Spark engine runs this same file.
create or replace temp table customer_merge_edges as
with
profiles as (
    select
        customer_id,
        row_number() over (order by min(signup_date) asc nulls last, customer_id asc) as rank
    from staging.customers
    where customer_id is not null
    group by customer_id
),

customer_handles as (
    select customer_id, unnest(string_split(social_handles, ';')) as raw_value
    from staging.customers
    where social_handles is not null
),

profile_keys as (
    select p.rank, 'email' as key_type, intermediate.normalized_email(c.email) as key
    from staging.customers as c
    inner join profiles as p on p.customer_id = c.customer_id
    union
    select p.rank, 'handle', intermediate.normalized_handle(h.raw_value)
    from customer_handles as h
    inner join profiles as p on p.customer_id = h.customer_id
),

shared_keys as (
    select k.key_type, k.key, min(k.rank) as first_rank
    from profile_keys as k
    left join erased_placeholder_keys as e on e.key_type = k.key_type and e.key = k.key
    where k.key is not null and e.key is null
    group by k.key_type, k.key
    having count(distinct k.rank) between 2 and $max_profiles_per_key
),

star as (
    select distinct k.rank as profile, s.first_rank as first_profile
    from profile_keys as k
    inner join shared_keys as s on s.key_type = k.key_type and s.key = k.key
    where k.rank <> s.first_rank
),

edges as (
    select profile as from_rank, first_profile as to_rank from star
    union
    select first_profile, profile from star
)

select from_rank, to_rank from edges
