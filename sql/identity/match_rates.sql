-- Match rate per source and role: how many staged values resolved to a customer, and by which rule.
select
    source,
    role,
    count(*) as rows,
    count(customer_id) as resolved,
    count(*) - count(customer_id) as unresolved,
    count(*) filter (where match_rule = 'customer_id') as by_customer_id,
    count(*) filter (where match_rule = 'email') as by_email,
    count(*) filter (where match_rule = 'handle') as by_handle,
    coalesce(count(customer_id) / nullif(count(*), 0), 0.0) as match_rate
from intermediate.identity_links
group by source, role
order by source, role
