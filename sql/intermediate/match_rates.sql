-- Match rate per source and role, counted over source rows (not distinct values): how many rows
-- resolved to a customer, and by which rule. distinct_values: how many distinct keys they carry.
select
    source,
    role,
    sum(source_rows)::bigint as rows,
    coalesce(sum(source_rows) filter (where customer_id is not null), 0)::bigint as resolved,
    coalesce(sum(source_rows) filter (where customer_id is null), 0)::bigint as unresolved,
    coalesce(sum(source_rows) filter (where match_rule = 'customer_id'), 0)::bigint
        as by_customer_id,
    coalesce(sum(source_rows) filter (where match_rule = 'email'), 0)::bigint as by_email,
    coalesce(sum(source_rows) filter (where match_rule = 'handle'), 0)::bigint as by_handle,
    coalesce(
        (sum(source_rows) filter (where customer_id is not null))::double
        / nullif(sum(source_rows), 0),
        0.0
    ) as match_rate,
    count(*) as distinct_values
from intermediate.identity_links
group by source, role
order by source, role
