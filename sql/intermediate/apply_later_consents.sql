-- The persons' marketing consent again where a later customers file changed a profile's
-- (later_consents: a frame of sql/staging/later_profile_consents.sql registered by the caller,
-- engagement_box/identity/links.py). Run after resolved_customers.sql, in the same transaction,
-- by the DuckDB engine: the same most restrictive answer over the person's profiles, each
-- profile's consent being its latest file's word.
update intermediate.resolved_customers as r
set marketing_consent = p.marketing_consent
from (
    select
        m.resolved_customer_id,
        bool_and(coalesce(l.marketing_consent, c.marketing_consent, false)) as marketing_consent
    from staging.customers as c
    inner join intermediate.customer_merge as m on m.customer_id = c.customer_id
    left join later_consents as l on l.customer_id = c.customer_id
    group by m.resolved_customer_id
    having count(l.customer_id) > 0
) as p
where r.customer_id = p.resolved_customer_id
