-- Staged orders with the resolved buyer (customer_id NULL when unresolved).
select
    o.order_id,
    l.customer_id,
    l.match_rule,
    o.ordered_at,
    o.net_amount,
    o.currency,
    o.status,
    o.channel
from staging.orders as o
left join intermediate.identity_links as l
    on l.source = 'orders' and l.role = 'buyer' and l.source_key = o.order_id
