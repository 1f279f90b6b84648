-- Each staged referral with its resolved referrer and referee, computed on read (a view: nothing
-- per row is stored). Referrer: referrer_customer_id if known to staging.customers. Referee:
-- referee_customer_id if known, else the normalised referee_email's owner. key_type / key of the
-- referee: as in orders_resolution.
create or replace view intermediate.referrals_resolution as
with
referrals as (
    select
        referral_id,
        referrer_customer_id as referrer_raw_id,
        referee_customer_id as referee_raw_id,
        nullif(lower(trim(referee_email)), '') as referee_email_key,
        referred_at,
        converted_at,
        referrer_reward,
        referee_reward,
        would_have_joined_anyway
    from staging.referrals
),

ids as (
    select normalized_value, customer_id
    from intermediate.identity_links
    where source = 'customers' and role = 'customer'
),

emails as (
    select normalized_value, customer_id
    from intermediate.identity_links
    where source = 'customers' and role = 'email'
)

select
    r.referral_id,
    r.referrer_raw_id as referrer_key,
    rr.customer_id as referrer_customer_id,
    case when rr.customer_id is not null then 'customer_id' end as referrer_match_rule,
    case
        when ri.customer_id is null and r.referee_email_key is not null then 'email'
        else 'customer_id'
    end as referee_key_type,
    case
        when ri.customer_id is null and r.referee_email_key is not null then r.referee_email_key
        else r.referee_raw_id
    end as referee_key,
    coalesce(ri.customer_id, re.customer_id) as referee_customer_id,
    case
        when ri.customer_id is not null then 'customer_id'
        when re.customer_id is not null then 'email'
    end as referee_match_rule,
    r.referred_at,
    r.converted_at,
    r.referrer_reward,
    r.referee_reward,
    r.would_have_joined_anyway
from referrals as r
left join ids as rr on rr.normalized_value = r.referrer_raw_id
left join ids as ri on ri.normalized_value = r.referee_raw_id
left join emails as re on re.normalized_value = r.referee_email_key
