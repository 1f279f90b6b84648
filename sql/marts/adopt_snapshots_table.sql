-- Warehouses from before marts.snapshot_log: their marts.snapshots table becomes the log (the
-- newest publish marked current is the version marts.* holds: adopt_current_version.sql).
INSERT INTO marts.snapshot_log
    (snapshot_id, published_at, run_id, partition_key, as_of, settings, "tables", expired_at)
SELECT snapshot_id, published_at, run_id, partition_key, as_of, settings, "tables", expired_at
FROM marts.snapshots
