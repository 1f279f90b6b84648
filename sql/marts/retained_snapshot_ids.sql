-- The retained versions (not expired).
SELECT snapshot_id FROM marts.snapshot_log WHERE expired_at IS NULL
