-- The marketing consent of each merged person one of whose profiles a later customers file
-- changed (later_consents: customer_id, marketing_consent, the rows of
-- sql/staging/later_profile_consents.sql, registered by the caller): the same most restrictive
-- answer over the person's profiles as resolved_customers.sql, each profile's consent being its
-- latest file's word. Both engines: the DuckDB engine updates intermediate.resolved_customers
-- with it (apply_later_consents.sql), the Spark engine writes the table again with it
-- (engagement_box/spark/pipeline.py::apply_later_consents).
-- Columns: customer_id (the person's, resolved), marketing_consent.
select
    m.resolved_customer_id as customer_id,
    bool_and(coalesce(l.marketing_consent, c.marketing_consent, false)) as marketing_consent
from staging.customers as c
inner join intermediate.customer_merge as m on m.customer_id = c.customer_id
left join later_consents as l on l.customer_id = c.customer_id
group by m.resolved_customer_id
having count(l.customer_id) > 0
