-- What each engagement source staged up to the end of the as-of day ($until): its rows and the
-- newest row's time (engagement_box/engagement/coverage.py). CRV reads the referrals, CIV the
-- social events, CKV the reviews.
select 'referrals' as source, count(*) as staged_rows, max(referred_at) as newest
from staging.referrals
where referred_at <= $until
union all
select 'social' as source, count(*) as staged_rows, max(occurred_at) as newest
from staging.social
where occurred_at <= $until
union all
select 'reviews' as source, count(*) as staged_rows, max(created_at) as newest
from staging.reviews
where created_at <= $until
