-- Staged orders with the resolved buyer (customer_id NULL when unresolved).
select order_id, customer_id, match_rule, ordered_at, net_amount, currency, status, channel
from intermediate.orders_resolution
