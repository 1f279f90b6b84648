-- Completed orders up to the as-of date (inclusive): the base of the share left out for want of
-- an FX rate.
SELECT count(*) FROM staging.orders
WHERE status = 'completed' AND ordered_at < CAST($as_of AS DATE) + 1
