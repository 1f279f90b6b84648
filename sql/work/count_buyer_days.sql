-- The rows of work.buyer_days, recorded with its state (engagement_box.incremental) and held
-- equal to it before the next run carries the rows forward.
SELECT count(*) FROM work.buyer_days
