-- The links only the new orders carry (new_order_links.sql), added to the identity links.
insert into intermediate.identity_links
    (source, role, key_type, normalized_value, customer_id, match_rule, source_rows)
select n.source, n.role, n.key_type, n.normalized_value, n.customer_id, n.match_rule, n.source_rows
from new_order_links as n
where not exists (
    select 1
    from intermediate.identity_links as l
    where l.source = n.source
        and l.role = n.role
        and l.key_type is not distinct from n.key_type
        and l.normalized_value is not distinct from n.normalized_value
        and l.customer_id is not distinct from n.customer_id
        and l.match_rule is not distinct from n.match_rule
)
