SELECT count(*) FROM marts.snapshot_log WHERE expired_at IS NULL
