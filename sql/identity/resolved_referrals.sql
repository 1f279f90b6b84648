-- Staged referrals with resolved referrer and referee customers (NULL when unresolved).
select
    r.referral_id,
    rr.customer_id as referrer_customer_id,
    re.customer_id as referee_customer_id,
    re.match_rule as referee_match_rule,
    r.referred_at,
    r.converted_at,
    r.referrer_reward,
    r.referee_reward,
    r.would_have_joined_anyway
from staging.referrals as r
left join intermediate.identity_links as rr
    on rr.source = 'referrals' and rr.role = 'referrer' and rr.source_key = r.referral_id
left join intermediate.identity_links as re
    on re.source = 'referrals' and re.role = 'referee' and re.source_key = r.referral_id
