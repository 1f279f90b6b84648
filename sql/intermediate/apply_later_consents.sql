-- The persons' marketing consent again where a later customers file changed a profile's
-- (later_consent_persons: sql/intermediate/later_consent_persons.sql, made a view by the caller,
-- engagement_box/identity/links.py). Run after resolved_customers.sql, in the same transaction,
-- by the DuckDB engine.
update intermediate.resolved_customers as r
set marketing_consent = p.marketing_consent
from later_consent_persons as p
where r.customer_id = p.customer_id
