-- The expired versions, with when they expired.
SELECT snapshot_id, expired_at FROM marts.snapshot_log WHERE expired_at IS NOT NULL
