-- Staged social events with resolved actor and target customers (NULL when unresolved).
select
    s.event_id,
    a.customer_id as actor_customer_id,
    t.customer_id as target_customer_id,
    s.event_type,
    s.platform,
    s.post_id,
    s.occurred_at
from staging.social as s
left join intermediate.identity_links as a
    on a.source = 'social' and a.role = 'actor' and a.source_key = s.event_id
left join intermediate.identity_links as t
    on t.source = 'social' and t.role = 'target' and t.source_key = s.event_id
