-- The merged persons' marketing consent of now (customer_id, email, marketing_consent), as the
-- audience files are written with it and record it (consenting_digest.sql): the identity step's
-- answer (intermediate.resolved_customers) less every withdrawal staged since it ran. A person
-- does not consent as soon as one of their profiles (intermediate.customer_merge) says no now:
-- its staged row, or the latest later customers file's word (staged_later_consents: a frame of
-- sql/staging/later_profile_consents.sql registered by the caller,
-- engagement_box/identity/links.py::consent_of_now), the most restrictive answer of
-- resolved_customers.sql. So a withdrawal leaves the audience files without the identity step:
-- a run that fails before it (an orders file missing a required column) still takes the person
-- out. A re-consent after a withdrawal the identity step took in waits for its next run (a run
-- that gets that far: conservative, consent must be given); so does a profile staged since it ran
-- (it belongs to no person yet: a new profile saying no to a consenting person's address waits
-- too). Once the identity step ran on the staged rows of now, this is resolved_customers' answer.
-- A temporary view of the caller's connection (read-only connections too), dropped by
-- drop_consent_of_now.sql.
create or replace temp view consent_of_now as
with says_no as (
    -- the profiles whose answer now is not a yes: their staged row's, unless a later file's
    -- word differs (then that word)
    select c.customer_id
    from staging.customers as c
    anti join staged_later_consents as l on l.customer_id = c.customer_id
    where not coalesce(c.marketing_consent, false)
    union all
    select customer_id
    from staged_later_consents
    where not marketing_consent
),

withdrawn as (
    select distinct m.resolved_customer_id
    from intermediate.customer_merge as m
    semi join says_no as n on n.customer_id = m.customer_id
)

select
    r.customer_id,
    r.email,
    coalesce(r.marketing_consent, false) and w.resolved_customer_id is null as marketing_consent
from intermediate.resolved_customers as r
left join withdrawn as w on w.resolved_customer_id = r.customer_id
