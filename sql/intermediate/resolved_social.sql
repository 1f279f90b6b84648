-- Staged social events with resolved actor and target customers (NULL when unresolved).
select
    event_id,
    actor_customer_id,
    target_customer_id,
    event_type,
    platform,
    post_id,
    occurred_at
from intermediate.social_resolution
