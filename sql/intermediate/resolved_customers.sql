-- One row per person (the merged customer), with attributes chosen from their profiles by the
-- survivorship rules below (docs/METRICS.md "One customer per person" gives the reasons).
-- The profiles of a person: intermediate.customer_merge. Every metric, mart and audience that
-- needs a customer's attributes reads this table, never staging.customers.
--
-- Columns and rules
--   customer_id        the surviving profile's id (earliest signup, then smallest id)
--   email, country     from the person's newest profile (latest signup_date, then largest id):
--                      profiles carry no update time, and the newest one holds what the person
--                      told us last. The email skips placeholders (an address on more profiles
--                      than ENGAGEMENT_MAX_PROFILES_PER_KEY, found by identity_links.sql: a
--                      till's noemail@..., which reaches the shop, not the person): NULL when
--                      every profile has one
--   signup_date        the earliest: when the person became a customer
--   loyalty_member     true when any profile is a member (membership belongs to the person)
--   marketing_consent  the most restrictive answer: true only when every profile says true; a
--                      single false, or an unknown (NULL) answer, makes it false. Consent must be
--                      given, so an unknown answer is not a yes
--   profile_count      how many staged profiles were merged into this person (1: no merge)
create or replace table intermediate.resolved_customers as
with
placeholder_emails as (
    -- the customers' emails identity_links.sql (run before this file) found to be placeholders
    select normalized_value as normalized_email
    from intermediate.identity_links
    where source = 'customers' and role = 'email' and customer_id is null
),

profiles as (
    select
        m.resolved_customer_id,
        m.profile_rank,
        c.customer_id,
        c.email,
        c.signup_date,
        c.loyalty_member,
        c.marketing_consent,
        c.country,
        x.normalized_email is not null as placeholder_email
    from staging.customers as c
    inner join intermediate.customer_merge as m on m.customer_id = c.customer_id
    left join placeholder_emails as x
        on x.normalized_email = intermediate.normalized_email(c.email)
)

select
    resolved_customer_id as customer_id,
    arg_max(email, profile_rank) filter (where not placeholder_email) as email,
    min(signup_date) as signup_date,
    arg_max(country, profile_rank) as country,
    coalesce(bool_or(loyalty_member), false) as loyalty_member,
    bool_and(coalesce(marketing_consent, false)) as marketing_consent,
    count(distinct customer_id) as profile_count
from profiles
group by resolved_customer_id
order by customer_id
