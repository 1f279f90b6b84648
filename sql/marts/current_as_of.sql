-- The current version and its as-of date (no row before the first publish).
SELECT c.snapshot_id, l.as_of
FROM marts.current_version AS c
JOIN marts.snapshot_log AS l USING (snapshot_id)
