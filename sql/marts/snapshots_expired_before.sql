-- The versions expired at $before or earlier, whose history files go (`EXPIRED_FILES_GRACE`).
-- Parameters: $before (TIMESTAMP).
SELECT snapshot_id FROM marts.snapshot_log
WHERE expired_at IS NOT NULL AND expired_at <= $before
