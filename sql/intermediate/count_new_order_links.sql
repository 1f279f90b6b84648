-- The new orders counted in the links they share with earlier orders (new_order_links.sql):
-- source_rows grows by the new rows carrying the link.
update intermediate.identity_links as l
set source_rows = l.source_rows + n.source_rows
from new_order_links as n
where l.source = n.source
    and l.role = n.role
    and l.key_type is not distinct from n.key_type
    and l.normalized_value is not distinct from n.normalized_value
    and l.customer_id is not distinct from n.customer_id
    and l.match_rule is not distinct from n.match_rule
