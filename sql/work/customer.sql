-- The customer mart as of $as_of: one row per resolved customer of work.engagement_value
-- (profiles signed up by the as-of date and buyers), with the profile attributes analysts filter
-- by (never an email, name or handle), the RFM segment and inputs, the CEV quadrant, the persona
-- and every value metric, all from the same as-of's work rows. The segment's and the quadrant's
-- plays are in customer_rfm and engagement_value: copied here as text per row, the step took
-- 7.0 CPU-s on a 1 % day of 1M customers with them, 4.8 without (2026-12-06).
-- Parameters: $as_of (DATE), $currency (the reporting currency).
with value as (
    select customer_id, clv, crv, civ, ckv, cev, quadrant
    from work.engagement_value
    where as_of = $as_of
),

rfm as (
    select customer_id, segment, order_count, total_spend
    from work.customer_rfm
    where as_of = $as_of
),

persona as (
    select customer_id, persona
    from work.customer_persona
    where as_of = $as_of
),

scores as (
    select customer_id, p_alive
    from work.customer_value
    where as_of = $as_of
),

profiles as (
    -- the person's attributes after merging their profiles (survivorship:
    -- sql/intermediate/resolved_customers.sql; consent is the most restrictive answer)
    select customer_id, country, marketing_consent, loyalty_member, signup_date
    from intermediate.resolved_customers
)

select
    v.customer_id,
    p.customer_id is not null as has_profile,
    p.country,
    p.marketing_consent,
    p.loyalty_member,
    p.signup_date,
    r.segment,
    v.quadrant,
    pe.persona,
    -- NULL with the segment for a customer with no customer_rfm row: their completed orders are
    -- all left out of the value models for want of an FX rate (customers_without_rate.sql);
    -- their clv, cev and quadrant are NULL in engagement_value (metrics.py::finish_values)
    r.order_count,
    cast(r.total_spend as double) as total_spend,
    s.p_alive,
    v.clv,
    v.crv,
    v.civ,
    v.ckv,
    v.cev,
    cast($currency as varchar) as currency
from value as v
left join rfm as r using (customer_id)
left join persona as pe using (customer_id)
left join scores as s using (customer_id)
left join profiles as p using (customer_id)
order by v.customer_id
