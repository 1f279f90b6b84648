INSERT INTO marts.current_version (singleton, snapshot_id)
SELECT true, snapshot_id FROM marts.snapshots
WHERE is_current
ORDER BY snapshot_id DESC
LIMIT 1
