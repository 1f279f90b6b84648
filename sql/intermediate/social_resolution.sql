-- Each staged social event with its resolved actor and target, computed on read (a view: nothing
-- per row is stored). Actor by actor_handle, target by target_handle (a post id alone cannot be
-- attributed without a posts export), both normalised like customers' handles
-- (sql/intermediate/rules.sql).
create or replace view intermediate.social_resolution as
with
social as (
    select
        event_id,
        actor_handle,
        target_handle,
        intermediate.normalized_handle(actor_handle) as actor_key,
        intermediate.normalized_handle(target_handle) as target_key,
        event_type,
        platform,
        post_id,
        occurred_at
    from staging.social
)

select
    s.event_id,
    s.actor_key,
    a.customer_id as actor_customer_id,
    intermediate.matched_rule(a.customer_id, 'handle') as actor_match_rule,
    s.target_handle is not null as has_target,
    s.target_key,
    t.customer_id as target_customer_id,
    intermediate.matched_rule(t.customer_id, 'handle') as target_match_rule,
    s.event_type,
    s.platform,
    s.post_id,
    s.occurred_at
from social as s
left join intermediate.customer_keys('handle') as a on a.normalized_value = s.actor_key
left join intermediate.customer_keys('handle') as t on t.normalized_value = s.target_key
