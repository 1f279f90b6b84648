-- Staged referrals with resolved referrer and referee customers (NULL when unresolved).
select
    referral_id,
    referrer_customer_id,
    referee_customer_id,
    referee_match_rule,
    referred_at,
    converted_at,
    referrer_reward,
    referee_reward,
    would_have_joined_anyway
from intermediate.referrals_resolution
