-- Each staged social event with its resolved actor and target, computed on read (a view: nothing
-- per row is stored). Actor by actor_handle, target by target_handle (a post id alone cannot be
-- attributed without a posts export), both normalised like customers' handles.
create or replace view intermediate.social_resolution as
with
social as (
    select
        event_id,
        actor_handle,
        target_handle,
        nullif(ltrim(lower(trim(actor_handle)), '@'), '') as actor_key,
        nullif(ltrim(lower(trim(target_handle)), '@'), '') as target_key,
        event_type,
        platform,
        post_id,
        occurred_at
    from staging.social
),

handles as (
    select normalized_value, customer_id
    from intermediate.identity_links
    where source = 'customers' and role = 'handle'
)

select
    s.event_id,
    s.actor_key,
    a.customer_id as actor_customer_id,
    case when a.customer_id is not null then 'handle' end as actor_match_rule,
    s.target_handle is not null as has_target,
    s.target_key,
    t.customer_id as target_customer_id,
    case when t.customer_id is not null then 'handle' end as target_match_rule,
    s.event_type,
    s.platform,
    s.post_id,
    s.occurred_at
from social as s
left join handles as a on a.normalized_value = s.actor_key
left join handles as t on t.normalized_value = s.target_key
