-- Each staged referral with its resolved referrer and referee, computed on read (a view: nothing
-- per row is stored). Rules (sql/intermediate/rules.sql): referrer by referrer_customer_id if known
-- to staging.customers; referee by referee_customer_id if known, else the normalised
-- referee_email's owner. key_type / key of the referee: as in orders_resolution.
create or replace view intermediate.referrals_resolution as
with
referrals as (
    select
        referral_id,
        referrer_customer_id as referrer_raw_id,
        referee_customer_id as referee_raw_id,
        intermediate.normalized_email(referee_email) as referee_email_key,
        referred_at,
        converted_at,
        referrer_reward,
        referee_reward,
        would_have_joined_anyway
    from staging.referrals
)

select
    r.referral_id,
    r.referrer_raw_id as referrer_key,
    rr.customer_id as referrer_customer_id,
    intermediate.matched_rule(rr.customer_id, 'customer_id') as referrer_match_rule,
    intermediate.id_else_email_key_type(ri.customer_id, r.referee_email_key) as referee_key_type,
    intermediate.id_else_email_key(ri.customer_id, r.referee_email_key, r.referee_raw_id)
        as referee_key,
    intermediate.id_else_email_customer(ri.customer_id, re.customer_id) as referee_customer_id,
    intermediate.id_else_email_rule(ri.customer_id, re.customer_id) as referee_match_rule,
    r.referred_at,
    r.converted_at,
    r.referrer_reward,
    r.referee_reward,
    r.would_have_joined_anyway
from referrals as r
left join intermediate.customer_keys('customer') as rr on rr.normalized_value = r.referrer_raw_id
left join intermediate.customer_keys('customer') as ri on ri.normalized_value = r.referee_raw_id
-- the email's owner only counts when the id finds no customer (orders_resolution.sql)
left join intermediate.customer_keys('email') as re
    on re.normalized_value = case when ri.customer_id is null then r.referee_email_key end
