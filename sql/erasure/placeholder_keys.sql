-- The emails and handles identity treats as placeholders: carried by more than
-- $max_profiles_per_key staged profiles (ENGAGEMENT_MAX_PROFILES_PER_KEY; the merge's own rule,
-- sql/intermediate/customer_merge_edges.sql). A till's noemail@... is not the person's: an
-- erasure does not follow it from their profile to the strangers who carry it too, and does not
-- log it (a stranger's later rows carrying it are not kept out). (kind, key), normalised.
-- The profiles it erases on such a key go on counting (staging.erased_profile_keys).
with keys as (
    select 'email' as kind, erasure_normalized(email, 'email') as key, customer_id
    from staging.customers
    union
    select 'handle', erasure_normalized(handle, 'handle'), customer_id
    from (
        select customer_id, unnest(string_split(social_handles, ';')) as handle
        from staging.customers
        where social_handles is not null
    )
)

select kind, key
from keys
where key is not null
group by kind, key
having count(distinct customer_id) > $max_profiles_per_key
union
-- placeholders only with earlier erasures' carriers counted (the temporary table that
-- sql/intermediate/erased_placeholder_keys.sql, run first on this connection, writes)
select key_type, key
from erased_placeholder_keys
